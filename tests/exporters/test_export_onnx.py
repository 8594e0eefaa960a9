"""export_onnx: folded, eval-mode, self-contained files with the contract's names, opset and metadata."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx.external_data_helper import uses_external_data
from torch import nn

from exporters import ExportError, FoldError, export_onnx, fold_batchnorm
from runtime import Session
from tiny_models import conv_bn_mlp  # on sys.path under pytest


def _ort_logits(path: Path, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"input": x.numpy()})[0]


def _eval_logits(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    mode = model.training
    model.eval()
    with torch.no_grad():
        out = model(x).numpy()
    model.train(mode)
    return out


def _op_types(path: Path) -> list[str]:
    return [node.op_type for node in onnx.load(str(path)).graph.node]


@pytest.mark.parametrize("conv_bias", [True, False])
def test_folded_export_has_no_batchnorm_and_matches_torch(tmp_path, randomize, make_metadata, conv_bias):
    torch.manual_seed(0)
    model = conv_bn_mlp(conv_bias)
    randomize(model)
    result = export_onnx(model, tmp_path / "m.onnx", input_size=(3, 8, 8), metadata=make_metadata(4))
    assert result.batchnorm_nodes == 0 and "BatchNormalization" not in _op_types(result.path)
    assert len(result.fold_report.folded) == 2
    x = torch.randn(5, 3, 8, 8)
    assert np.abs(_ort_logits(result.path, x) - _eval_logits(model, x)).max() < 1e-5


def test_exported_file_gets_the_umask_mode(tmp_path, make_metadata):
    old = os.umask(0o022)
    try:
        result = export_onnx(conv_bn_mlp(True), tmp_path / "m.onnx", input_size=(3, 8, 8), metadata=make_metadata(4))
    finally:
        os.umask(old)
    assert stat.S_IMODE(result.path.stat().st_mode) == 0o644  # not mkstemp's 0o600: others can read the model
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_training_mode_model_exports_in_eval_and_stays_in_train(tmp_path, randomize, make_metadata):
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 16),
        nn.BatchNorm1d(16),
        nn.Dropout(0.5),
        nn.Linear(16, 10),
    )
    randomize(model).train()
    result = export_onnx(model, tmp_path / "m.onnx", input_size=(3, 8, 8), metadata=make_metadata())
    assert model.training and isinstance(model[1], nn.BatchNorm2d)
    ops = _op_types(result.path)
    assert "Dropout" not in ops and "BatchNormalization" not in ops
    x = torch.randn(6, 3, 8, 8)
    assert np.abs(_ort_logits(result.path, x) - _eval_logits(model, x)).max() < 1e-5


@pytest.mark.parametrize("fold, error", [(True, FoldError), (False, ExportError)])
def test_batchnorm_without_running_stats_is_refused(tmp_path, make_metadata, fold, error):
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8, track_running_stats=False), nn.Flatten(), nn.Linear(8 * 4 * 4, 10)
    )
    with pytest.raises(error, match=r"BatchNorm '1' has no running statistics"):
        export_onnx(model, tmp_path / "m.onnx", input_size=(3, 6, 6), metadata=make_metadata(), fold=fold)
    assert list(tmp_path.iterdir()) == []


class _Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2))
        self.conv = nn.Conv2d(6, 8, 3)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu(self.conv(self.features(x))))
        return self.fc(torch.flatten(x, 1))


@pytest.mark.parametrize("opset", [17, 18])
def test_opset_names_dims_and_metadata_follow_the_contract(tmp_path, randomize, make_metadata, opset):
    model = randomize(_Small())
    result = export_onnx(model, tmp_path / "m.onnx", input_size=(3, 12, 12), metadata=make_metadata(5), opset=opset)
    proto = onnx.load(str(result.path))
    assert result.opset == opset
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [opset]
    (graph_input,), (graph_output,) = proto.graph.input, proto.graph.output
    assert (graph_input.name, graph_output.name) == ("input", "logits")
    assert [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim] == ["batch", 3, 12, 12]
    assert [d.dim_param or d.dim_value for d in graph_output.type.tensor_type.shape.dim] == ["batch", 5]
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["toolkit.model"] == "tiny" and props["toolkit.version"] == "0.1.0"
    assert json.loads(props["toolkit.input_size"]) == [3, 12, 12]
    assert json.loads(props["toolkit.mean"]) == [0.5] * 3 and json.loads(props["toolkit.std"]) == [0.25] * 3
    assert json.loads(props["toolkit.classes"]) == [f"class{i}" for i in range(5)]
    export_info = json.loads(props["toolkit.export"])
    assert export_info["opset"] == opset and [e["bn"] for e in export_info["folded"]] == ["features.1"]
    assert json.loads(props["toolkit.layers"]) == result.layers and "features.0" in result.layers
    assert not any(uses_external_data(t) for t in proto.graph.initializer)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # one file, no temp left behind


def _hook_outputs(model: nn.Module, x: np.ndarray, paths: list[str]) -> dict[str, np.ndarray]:
    values: dict[str, np.ndarray] = {}
    modules = dict(model.named_modules())
    handles = [
        modules[p].register_forward_hook(lambda _m, _i, out, p=p: values.__setitem__(p, out.detach().numpy().copy()))
        for p in paths
    ]
    with torch.no_grad():
        model.eval()(torch.from_numpy(x))
    for handle in handles:
        handle.remove()
    return values


def _assert_layers_match(model: nn.Module, result, x: np.ndarray, paths: list[str]) -> None:
    """The runtime's intermediates (read through toolkit.layers) equal torch forward hooks."""
    folded, _ = fold_batchnorm(model, input_size=x.shape[1:])
    assert set(paths) <= set(result.layers), sorted(set(paths) - set(result.layers))
    onnx_values = Session(result.path).intermediates(x, paths)
    torch_values = _hook_outputs(folded, x, paths)
    for path in paths:
        got, expected = onnx_values[path], torch_values[path]
        assert got.shape == expected.shape, path
        assert np.abs(got - expected).max() < 1e-5, path


def test_layers_map_matches_torch_forward_hooks(tmp_path, randomize, make_metadata):
    model = randomize(_Small())
    result = export_onnx(model, tmp_path / "m.onnx", input_size=(3, 12, 12), metadata=make_metadata(5))
    everything = ["features", "features.0", "features.1", "features.2", "features.3", "conv", "relu", "pool", "fc"]
    assert list(result.layers) == everything
    assert result.layers["features.1"] == result.layers["features.0"]  # the folded BN returns the conv output
    assert result.layers["fc"] == "logits"
    x = np.random.default_rng(0).standard_normal((3, 3, 12, 12)).astype(np.float32)
    _assert_layers_match(model, result, x, everything)


@pytest.mark.slow
def test_resnet18_folds_all_batchnorms_and_maps_layers(tmp_path, randomize, make_metadata):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(2)
    model = randomize(torchvision.models.resnet18(weights=None, num_classes=10))
    result = export_onnx(model, tmp_path / "r.onnx", input_size=(3, 32, 32), metadata=make_metadata())
    assert len(result.fold_report.folded) == 20 and result.fold_report.kept == []
    assert result.batchnorm_nodes == 0
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    assert np.abs(_ort_logits(result.path, torch.from_numpy(x)) - _eval_logits(model, torch.from_numpy(x))).max() < 1e-4
    _assert_layers_match(model, result, x, ["conv1", "bn1", "layer1", "layer4.1.conv2", "layer4", "avgpool", "fc"])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"input_size": (3, 8)}, r"expected input_size \(C, H, W\) of three positive ints, got \(3, 8\)"),
        ({"opset": 7}, r"expected opset an int in 13\.\.\d+ .*got 7"),
        ({"drop": "version"}, r"expected metadata keys \['model', 'mean', 'std', 'classes', 'version'\]"),
        ({"metadata": {"classes": ["a", "b"]}}, r"metadata\['classes'\] has 2 names but the model outputs 10 logits"),
        ({"metadata": {"std": [0.2, 0.0, 0.2]}}, r"expected metadata\['std'\] a list of 3 positive numbers"),
        ({"metadata": {"layers": {}}}, r"without \['input_size', 'layers', 'export'\]"),
        ({"input_size": (1, 8, 8)}, r"model forward fails on zeros of shape \(N, 1, 8, 8\)"),
    ],
)
def test_bad_arguments_raise_export_error(tmp_path, make_metadata, kwargs, match):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    metadata = {**make_metadata(), **kwargs.pop("metadata", {})}
    metadata.pop(kwargs.pop("drop", ""), None)
    args = {"input_size": (3, 8, 8), "metadata": metadata, **kwargs}
    with pytest.raises(ExportError, match=match):
        export_onnx(model, tmp_path / "m.onnx", **args)
    assert list(tmp_path.iterdir()) == []


def test_missing_directory_is_refused(tmp_path, make_metadata):
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 10))
    with pytest.raises(ExportError, match=r"expected an existing directory"):
        export_onnx(model, tmp_path / "nope" / "m.onnx", input_size=(3, 4, 4), metadata=make_metadata())


class _SharedOutput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 6 * 6, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.fc(torch.flatten(self.bn(y) + y, 1))  # the conv output also feeds the skip path


@pytest.mark.parametrize("model_class, fold", [(_SharedOutput, True), (_Small, False)])
def test_kept_or_unfolded_batchnorm_stays_a_batchnorm_node(tmp_path, randomize, make_metadata, model_class, fold):
    torch.manual_seed(3)
    model = randomize(model_class())
    classes = 10 if model_class is _SharedOutput else 5
    size = (3, 8, 8) if model_class is _SharedOutput else (3, 12, 12)
    result = export_onnx(model, tmp_path / "m.onnx", input_size=size, metadata=make_metadata(classes), fold=fold)
    assert result.batchnorm_nodes == 1 and _op_types(result.path).count("BatchNormalization") == 1
    assert result.fold_report.folded == [] and len(result.fold_report.kept) == 1
    x = torch.randn(3, *size)
    assert np.abs(_ort_logits(result.path, x) - _eval_logits(model, x)).max() < 1e-5
