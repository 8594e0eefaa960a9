"""validate_export and diagnose_export: reports that name batch sizes, nodes and layers."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from exporters import ExportError, ValidationError, diagnose_export, export_onnx, validate_export
from tiny_models import network1  # on sys.path under pytest


class _Flat(nn.Module):
    """Conv -> flatten -> Linear; ``fixed_batch`` hard-codes batch 1 with x.view(1, -1)."""

    def __init__(self, fixed_batch: bool) -> None:
        super().__init__()
        self.fixed_batch = fixed_batch
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4 * 14 * 14, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return self.fc(x.view(1, -1) if self.fixed_batch else x.flatten(1))


@pytest.fixture
def exported(tmp_path, make_metadata):
    """``exported(model, input_size=(3, 16, 16), classes=6) -> path`` of its export in tmp_path."""

    def export(model: nn.Module, classes: int = 6, name: str = "m.onnx") -> Path:
        return export_onnx(model, tmp_path / name, input_size=(3, 16, 16), metadata=make_metadata(classes)).path

    return export


@pytest.fixture(scope="module")
def flat_export(tmp_path_factory) -> tuple[nn.Module, Path]:
    torch.manual_seed(4)
    model = _Flat(fixed_batch=False)
    metadata = {"model": "flat", "mean": [0.0] * 3, "std": [1.0] * 3, "classes": list("abcdef"), "version": "0"}
    path = tmp_path_factory.mktemp("flat") / "flat.onnx"
    return model, export_onnx(model, path, input_size=(3, 16, 16), metadata=metadata).path


def test_view_batch_one_exports_but_fails_validation_naming_batch_and_reshape(exported, images):
    torch.manual_seed(0)
    model = _Flat(fixed_batch=True)
    path = exported(model)
    report = validate_export(model, path, images, batch_sizes=(1, 2, 3))
    assert not report
    assert report.batch_sizes == [1, 2, 3]
    ran = {r.batch_size: r.max_abs_diff is not None for r in report.results}
    assert ran == {1: True, 2: False, 3: False}
    assert [f.split(":")[0] for f in report.failures] == ["batch size 2", "batch size 3"]
    assert all("(Reshape) shape [1, -1]" in f for f in report.failures)
    with pytest.raises(
        ValidationError, match=r"batch size 2: onnxruntime failed: Gemm node .*\(Reshape\).*; batch size 3: "
    ):
        report.raise_for_failure()


def test_flatten_model_passes_at_every_batch_size(flat_export, images):
    model, path = flat_export
    report = validate_export(model, path, images)
    assert report, report.failures
    report.raise_for_failure()
    assert report.batch_sizes == [1, 2, 7, 64]  # 2 is always added; 7 is the odd size above 2
    summary = report.to_dict()
    assert summary["passed"] is True and summary["opset"] == 18 and summary["failures"] == []
    assert summary["top1_agreement"] == 1.0 and summary["max_abs_diff"] < 1e-5
    assert {"batchnorm_folded", "batchnorm_nodes", "batch_sizes", "max_rel_diff"} <= summary.keys()
    assert [r["images"] for r in summary["per_batch_size"]] == [8, 8, 8, 64]  # 64 > 8 images: repeated


def test_network1_report_names_folds_and_keeps_and_onnx_matches(exported, randomize, images):
    torch.manual_seed(1)
    model = randomize(network1(blocks=3, channels=(3, 6, 8, 8)), seed=1)
    with torch.no_grad():
        model[2].weight.copy_(model[2].weight.abs() + 0.1)  # positive: stopped only by the padded conv
        model[6].weight.copy_(model[6].weight.abs() + 0.1)
        model[6].weight[3] = -0.5  # one negative channel in front of a MaxPool
        model[10].weight.copy_(model[10].weight.abs() + 0.1)  # positive: folds through pool + flatten
    path = exported(model, classes=10)
    report = validate_export(model, path, images, batch_sizes=(1, 8), atol=1e-5)
    assert report, report.failures
    assert report.batchnorm_folded == 2 and report.batchnorm_nodes == 2
    export_info = onnx.load(str(path)).metadata_props
    text = {p.key: p.value for p in export_info}["toolkit.export"]
    assert '"bn": "10", "action": "folded", "into": "13", "direction": "forward"' in text
    assert '"bn": "15", "action": "folded", "into": "16", "direction": "forward"' in text
    assert "zero padding of 4 breaks the equivalence" in text
    assert "channels [3] have non-positive scale" in text


def _corrupt_initializer(path: Path, name: str) -> None:
    proto = onnx.load(str(path))
    for tensor in proto.graph.initializer:
        if tensor.name == name:
            values = numpy_helper.to_array(tensor).copy()
            values.flat[0] += 1.0
            tensor.CopyFrom(numpy_helper.from_array(values, name))
    onnx.save(proto, str(path))


def test_diagnose_names_the_first_layer_differing_after_corruption(exported, randomize, images):
    torch.manual_seed(2)
    model = randomize(network1(blocks=2, channels=(3, 6, 8, 8)), seed=2, positive_scale=True)
    path = exported(model, classes=10)
    clean = diagnose_export(model, path, images, atol=1e-5)
    assert clean and clean.first_mismatch is None
    assert len(clean.layers) >= 9 and all(d.max_abs_diff is not None and d.max_abs_diff < 1e-5 for d in clean.layers)
    conv2_weight = next(
        i for i in onnx.load(str(path)).graph.node if i.op_type == "Conv" and i.input[0] != "input"
    ).input[1]
    _corrupt_initializer(path, conv2_weight)
    assert not validate_export(model, path, images, batch_sizes=(4,), atol=1e-5)
    broken = diagnose_export(model, path, images, atol=1e-5)
    assert broken.first_mismatch == "4" and not broken.folding_changed_output
    assert "first layer differing by more than 1e-05: 4" in str(broken)
    assert broken.to_dict()["first_mismatch"] == "4"
    assert broken.to_dict()["message"] == "first layer differing by more than 1e-05: 4"
    assert clean.to_dict()["message"] == (
        "every layer of the ONNX file matches torch within 1e-05, and folding BatchNorm did not change the logits"
    )


def test_diagnose_names_the_folding_when_the_fold_math_is_slightly_wrong(exported, randomize, images, monkeypatch):
    import exporters.fold

    exact = exporters.fold.fold_into_next

    def slightly_wrong(layer: nn.Module, scale: torch.Tensor, shift: torch.Tensor, block: int) -> None:
        exact(layer, scale, shift + 1e-3, block)

    monkeypatch.setattr(exporters.fold, "fold_into_next", slightly_wrong)
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3),
        nn.BatchNorm2d(6),  # folds backward into 0 (exact)
        nn.ReLU(),
        nn.BatchNorm2d(6),  # folds forward into 6 (the wrong math)
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(6 * 7 * 7, 10),
    )
    randomize(model, seed=3, positive_scale=True)
    path = exported(model, classes=10)
    assert not validate_export(model, path, images, batch_sizes=(4,), atol=1e-5)
    report = diagnose_export(model, path, images, atol=1e-5)
    assert not report and report.folding_changed_output and report.fold_max_abs_diff > 1e-5
    assert report.first_mismatch is None  # the ONNX file is the (wrongly) folded model, layer by layer
    message = report.to_dict()["message"]
    assert message.startswith("BatchNorm folding changed the output: folded vs unfolded torch logits differ by ")
    folds = "folded forward: 3 into 6; backward: 1 into 0"  # forward folds first
    assert message.endswith(f"; {folds}; the ONNX file matches the folded model layer by layer")
    assert str(report).splitlines()[0] == message


def test_validate_reports_too_large_difference(flat_export, images, tmp_path):
    model, clean = flat_export
    path = tmp_path / "corrupt.onnx"
    shutil.copyfile(clean, path)
    _corrupt_initializer(path, "fc.bias")
    report = validate_export(model, path, images, batch_sizes=(4,))
    assert not report
    assert any("max abs diff 1 > atol 0.0001" in f for f in report.failures), report.failures
    loose = validate_export(model, path, images, batch_sizes=(4,), atol=1e-4, rtol=10.0)
    assert not any("max abs diff" in f for f in loose.failures)  # rtol > 0 can accept it
    strict = validate_export(model, path, images, batch_sizes=(4,), rtol=1e-9)
    assert any(re.search(r"max abs diff 1 > atol 0.0001 and max rel diff \S+ > rtol 1e-09", f) for f in strict.failures)


@pytest.mark.parametrize(
    "bad_images, kwargs, match",
    [
        (
            np.zeros((2, 3, 16, 16), np.float64),
            {},
            r"expected images as a non-empty float32 \(N, C, H, W\) array, got float64",
        ),
        (np.zeros((2, 3, 8, 8), np.float32), {}, r"expected images of shape \(N, 3, 16, 16\), got \(2, 3, 8, 8\)"),
        (
            np.zeros((2, 3, 16, 16), np.float32),
            {"batch_sizes": (0,)},
            r"expected batch_sizes a non-empty sequence of positive ints",
        ),
        (np.zeros((2, 3, 16, 16), np.float32), {"atol": -1.0}, r"expected atol >= 0 and rtol >= 0"),
    ],
)
def test_bad_validation_arguments_raise(flat_export, bad_images, kwargs, match):
    model, path = flat_export
    with pytest.raises(ExportError, match=match):
        validate_export(model, path, bad_images, **kwargs)


def test_diagnose_refuses_a_file_without_layers(flat_export, images, tmp_path):
    model, path = flat_export
    proto = onnx.load(str(path))
    kept = [p for p in proto.metadata_props if p.key != "toolkit.layers"]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    with pytest.raises(ExportError, match=r"records no toolkit.layers; re-export it with exporters.export_onnx"):
        diagnose_export(model, bare, images, atol=1e-5)


def test_every_readable_layer_is_its_torch_output_and_forward_folds_are_named(exported, randomize, images):
    # Network 1's order (BN after ReLU): the last BN2d folds forward through MaxPool and Flatten into the Linear,
    # the BN1d forward into the last Linear. Their outputs, and the MaxPool/Flatten/Sequential between, exist in
    # the folded graph only un-normalized: they must not be readable, and must say why.
    from runtime import Session, UnknownLayerError

    torch.manual_seed(5)
    model = randomize(network1(blocks=2, channels=(3, 6, 8, 8)), seed=5, positive_scale=True).eval()
    session = Session(exported(model, classes=10))
    export = session.metadata.export
    forward = {e["bn"]: e["into"] for e in export["folded"] if e["direction"] == "forward"}
    assert forward == {"6": "9", "11": "12"}  # BN2d 6 -> Linear 9 (through MaxPool 7, Flatten 8); BN1d 11 -> 12
    assert sorted(export["layers_unavailable"]) == ["11", "6", "7", "8"]
    names = session.layer_names()
    assert not set(names) & {"6", "7", "8", "11"} and {"0", "2", "4", "5", "9", "12"} <= set(names)
    expected: dict[str, np.ndarray] = {}
    hooks = [model.get_submodule(name).register_forward_hook(
        lambda _m, _i, out, name=name: expected.__setitem__(name, out.detach().numpy())) for name in names]
    with torch.inference_mode():
        model(torch.from_numpy(images))
    for hook in hooks:
        hook.remove()
    got = session.intermediates(images, names)
    for name in names:  # the unfolded model's own outputs (no BN folded backward in this model)
        np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-4, err_msg=name)
    with pytest.raises(UnknownLayerError, match=r"layer '7' of model 'tiny' cannot be read from this graph: no graph "
                                                r"tensor holds its torch output .*BatchNorm folded forward \(6 into 9"):
        session.intermediates(images, ["7"])
