"""toolkit activations: a layer's maps for a real photo, equal to torch hooks on the folded model."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from onnx import numpy_helper
from torch import nn

import toolkit.plots
from exporters import export_onnx, fold_batchnorm
from runtime import Session, UnknownLayerError
from toolkit.activations import compute_activations, draw_activations, parse_filters
from toolkit.cli import cli
from toolkit.errors import ConfigError
from toolkit.images import read_image

SIZE = (3, 16, 16)


def _randomize_batchnorms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial running stats and affine params, so a folded BN really changes the conv's weights."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=gen) * 2 - 1)
                m.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) * 2 - 1)
                m.bias.copy_(torch.rand(n, generator=gen) * 2 - 1)
    return model.eval()


def _metadata(model: str = "tiny", classes: int = 10) -> dict[str, object]:
    return {"model": model, "mean": [0.5, 0.45, 0.4], "std": [0.25, 0.24, 0.26],
            "classes": [f"class{i}" for i in range(classes)], "version": "0.1.0"}


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),  # 0 1 2 3
        nn.Conv2d(8, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),                 # 4 5 6
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 10),                     # 7 8 9
    )
    return _randomize_batchnorms(model)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, Path]:
    """The tiny model (unfolded, eval mode) and its folded ONNX export."""
    model = _tiny()
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    export_onnx(model, path, input_size=SIZE, metadata=_metadata())
    return model, path


@pytest.fixture
def zebra(data_dir: Path) -> Path:
    return data_dir / "images" / "zebra.jpg"


@pytest.fixture
def plotted(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What draw_activations hands to plots.plot_activations (the real one still draws)."""
    calls: list[dict[str, Any]] = []
    real = toolkit.plots.plot_activations

    def spy(activations: np.ndarray, filters: list[int], path: Path, **kwargs: Any) -> Path:
        calls.append({"activations": activations, "filters": list(filters), "path": path, **kwargs})
        return real(activations, filters, path, **kwargs)

    monkeypatch.setattr(toolkit.plots, "plot_activations", spy)
    return calls


def _hooked(model: nn.Module, path: Path, image: Path, layers: list[str]) -> dict[str, np.ndarray]:
    """Forward-hook outputs of ``layers`` on the BN-folded model, for the photo preprocessed as the runtime does."""
    session = Session(path)
    folded, _ = fold_batchnorm(model, input_size=session.metadata.input_size)
    batch = torch.from_numpy(session.preprocess([read_image(image)]))  # (1, C, H, W)
    seen: dict[str, np.ndarray] = {}
    handles = [folded.get_submodule(name).register_forward_hook(
        # clone: torchvision's blocks add the shortcut and ReLU in place onto the (folded) conv's output
        lambda _m, _i, out, name=name: seen.__setitem__(name, out[0].detach().clone().numpy())) for name in layers]
    with torch.no_grad():
        folded(batch)
    for handle in handles:
        handle.remove()
    return seen


def _initializer(path: Path, name: str) -> np.ndarray:
    graph = onnx.load(str(path)).graph
    return next(numpy_helper.to_array(t) for t in graph.initializer if t.name == name)


def test_first_conv_maps_and_weights_equal_torch_and_onnx(tiny, zebra, plotted, tmp_path):
    model, path = tiny
    maps = draw_activations(path, zebra, "0", [1, 5, 7], tmp_path / "fig5.png")
    (call,) = plotted
    hooks = _hooked(model, path, zebra, ["0"])
    assert call["activations"].shape == (8, 16, 16) and call["filters"] == [1, 5, 7]
    np.testing.assert_allclose(call["activations"], hooks["0"], atol=1e-4, rtol=0)
    weights = _initializer(path, "0.weight")
    np.testing.assert_array_equal(call["weights"], weights)  # the top row is the ONNX initializer
    folded, _ = fold_batchnorm(model, input_size=SIZE)
    np.testing.assert_allclose(weights, folded[0].weight.detach().numpy(), atol=1e-6)  # ... with BN folded in
    assert not np.allclose(weights, model[0].weight.detach().numpy(), atol=1e-3)
    assert maps.bn_fold == "backward" and "BatchNorm folded in: each output channel scaled" in call["title"]
    assert maps.channels == 8 and maps.path == tmp_path / "fig5.png"


def test_deeper_layer_maps_equal_torch_and_have_no_weights(tiny, zebra, plotted, tmp_path):
    model, path = tiny
    maps = draw_activations(path, zebra, "6", None, tmp_path / "fig6.png")
    (call,) = plotted
    np.testing.assert_allclose(call["activations"], _hooked(model, path, zebra, ["6"])["6"], atol=1e-4, rtol=0)
    assert call["weights"] is None and maps.weights is None
    assert call["filters"] == list(range(6))  # default: the first ten, or all when fewer
    assert call["activations"].shape == (6, 8, 8)


@pytest.mark.parametrize("layer, first_conv", [
    ("0", True),    # the Conv that reads the image
    ("1", True),    # the folded BN became Identity: its tensor is that Conv's output
    ("2", False),   # ReLU right after it: made by a Relu node, not by the Conv
    ("4", False),   # a Conv, but fed by a MaxPool, not by the image
    ("7", False),
])
def test_first_conv_is_decided_on_the_graph(tiny, zebra, layer, first_conv):
    _, path = tiny
    assert (compute_activations(path, zebra, layer, [0]).weights is not None) is first_conv


def test_png_is_written_atomically(tiny, zebra, tmp_path):
    _, path = tiny
    out = tmp_path / "figs" / "maps.png"
    maps = draw_activations(path, zebra, "0", [0, 1], out)
    assert maps.path == out and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["maps.png"]  # no temporary file left


def test_failed_write_leaves_nothing(tiny, zebra, tmp_path, monkeypatch):
    _, path = tiny

    def broken(src: str, dst: str) -> None:
        raise OSError("disk full (test)")

    monkeypatch.setattr("runtime._fileio.os.replace", broken)
    with pytest.raises(OSError, match="disk full"):
        draw_activations(path, zebra, "0", [0], tmp_path / "maps.png")
    assert list(tmp_path.iterdir()) == []


def test_unknown_layer_lists_the_valid_names(tiny, zebra, tmp_path):
    with pytest.raises(UnknownLayerError, match=r"unknown layer names \['conv9'\]: expected names from \['0', '1'"):
        draw_activations(tiny[1], zebra, "conv9", None, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_filter_out_of_range_says_how_many_channels(tiny, zebra, tmp_path):
    with pytest.raises(ConfigError, match=r"filters \[8, 9\] are out of range: layer '0' has 8 channels, so "
                                          r"indices must be 0\.\.7"):
        draw_activations(tiny[1], zebra, "0", [3, 8, 9], tmp_path / "x.png")


@pytest.mark.parametrize("layer, shape", [("8", r"\(1, 6\)"), ("9", r"\(1, 10\)")])
def test_layer_that_is_not_feature_maps(tiny, zebra, tmp_path, layer, shape):
    with pytest.raises(ConfigError, match=rf"layer '{layer}' outputs shape {shape}, not \(N, C, H, W\)"):
        draw_activations(tiny[1], zebra, layer, None, tmp_path / "x.png")


@pytest.mark.parametrize("text, expected", [
    ("14,26,32,49,52", [14, 26, 32, 49, 52]),
    ("0-9", list(range(10))),
    ("0-3, 7,2", [0, 1, 2, 3, 7]),
    ("5", [5]),
])
def test_parse_filters(text, expected):
    assert parse_filters(text) == expected


@pytest.mark.parametrize("text, message", [
    ("a,b", r"expected channel indices like 14,26,32 or a range like 0-9, got 'a'"),
    ("9-3", r"low <= high, got '9-3'"),
    ("-1", r"got '-1'"),
    (" , ", r"expected at least one channel index"),
])
def test_parse_filters_rejects(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_filters(text)


def test_cli_draws_and_reports(tiny, zebra, tmp_path):
    out = tmp_path / "cli.png"
    result = CliRunner().invoke(cli, ["activations", str(tiny[1]), str(zebra), "--layer", "0",
                                      "--filters", "0-2,5", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "wrote" in result.output and "filters 0, 1, 2, 5" in result.output
    assert "8 channels" in result.output and "BatchNorm folded in" in result.output


@pytest.mark.parametrize("args, message", [
    (["--layer", "nope"], "unknown layer names ['nope']"),
    (["--layer", "4", "--filters", "6"], "layer '4' has 6 channels"),
    (["--layer", "9"], "not (N, C, H, W)"),
    (["--layer", "0", "--filters", "x"], "--filters 'x'"),
])
def test_cli_errors_are_one_line(tiny, zebra, tmp_path, args, message):
    result = CliRunner().invoke(cli, ["activations", str(tiny[1]), str(zebra), *args, "-o", str(tmp_path / "x.png")])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0].startswith("error:") and message in lines[0]


def test_torchvision_resnet18_matches_hooks(zebra, tmp_path):
    import torchvision

    torch.manual_seed(0)
    model = _randomize_batchnorms(torchvision.models.resnet18(weights=None, num_classes=10), seed=1)
    path = tmp_path / "resnet18.onnx"
    export_onnx(model, path, input_size=(3, 64, 64), metadata=_metadata("resnet18"))
    hooks = _hooked(model, path, zebra, ["conv1", "layer4.1.conv2"])
    first = compute_activations(path, zebra, "conv1", [14, 26, 32, 49, 52])
    last = compute_activations(path, zebra, "layer4.1.conv2", list(range(10)))
    np.testing.assert_allclose(first.activations, hooks["conv1"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(last.activations, hooks["layer4.1.conv2"], atol=1e-4, rtol=0)
    assert first.activations.shape == (64, 32, 32) and last.activations.shape == (512, 2, 2)
    np.testing.assert_array_equal(first.weights, _initializer(path, "conv1.weight"))
    assert first.bn_folded and last.weights is None


def test_registry_model_net1_matches_hooks(zebra, tmp_path):
    from toolkit.models import get_model, get_model_spec

    name = "net1"  # the registry's CIFAR CNNs share one layout; net1 also has BNs to fold

    spec = get_model_spec(name)
    model = _randomize_batchnorms(get_model(name), seed=2)
    path = tmp_path / f"{name}.onnx"
    export_onnx(model, path, input_size=spec.input_size, metadata={**_metadata(name), "mean": list(spec.mean),
                                                                     "std": list(spec.std)})
    hooks = _hooked(model, path, zebra, ["features.0", "features.4"])
    first = compute_activations(path, zebra, "features.0", [0, 31])
    second = compute_activations(path, zebra, "features.4", [0, 63])
    np.testing.assert_allclose(first.activations, hooks["features.0"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(second.activations, hooks["features.4"], atol=1e-4, rtol=0)
    assert first.weights is not None and first.weights.shape == (32, 3, 5, 5) and second.weights is None
    assert not first.bn_folded  # net1's BN follows the ReLU: it never scales the first conv's filters
