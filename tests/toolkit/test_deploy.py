"""Deployment: checkpoint -> folded ONNX file -> runtime, with preprocessing and layers carried in the file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from checkpoint_builders import net1_with_running_stats, save_net1_checkpoint  # on sys.path under pytest
from torch import nn

import toolkit.deploy as deploy
from exporters import export_onnx
from runtime import Session, UnknownLayerError
from toolkit.checkpoint import load_checkpoint, save_checkpoint
from toolkit.config import make_config
from toolkit.data import CIFAR10_MEAN, CIFAR10_STD, normalize
from toolkit.deploy import export_checkpoint
from toolkit.models import CIFAR10_CLASSES, get_model
from toolkit.train import evaluate, train


@pytest.fixture
def cifar_once(cifar, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """export_checkpoint reads the real test images from the session's CIFAR-10 instead of re-reading the tarball."""
    monkeypatch.setattr(deploy, "load_cifar10", lambda data=None: cifar)
    return cifar


def _hwc(images: torch.Tensor) -> np.ndarray:
    """uint8 (N, C, H, W) tensor -> uint8 (N, H, W, C) array, as an application holds decoded images."""
    return np.ascontiguousarray(images.numpy().transpose(0, 2, 3, 1))


@pytest.mark.slow
def test_preprocessing_travels_with_the_model(cifar_once, data_dir: Path, tmp_path: Path) -> None:
    # 63 steps of 32 on 2,000 images: seconds of training, about 20% accuracy spread over most classes
    result = train(make_config("task2", epochs=1, train_subset=2000, batch_size=32), cifar_once)
    ckpt = save_checkpoint(tmp_path / "checkpoint.pt", result.model, name="task2",
                           model_args=result.config.model_args(), input_size=result.input_size,
                           mean=result.spec.mean, std=result.spec.std, classes=cifar_once.classes,
                           config=result.config.to_dict(), metrics=result.metrics)
    outcome = export_checkpoint(ckpt, tmp_path / "task2.onnx", data=data_dir, images=256)
    assert outcome.passed, outcome.report["failures"]

    images, labels = cifar_once.test_images[:1000], cifar_once.test_labels[:1000]
    _, torch_acc = evaluate(load_checkpoint(ckpt).model, images, labels, mean=CIFAR10_MEAN, std=CIFAR10_STD)
    assert torch_acc > 0.15, f"the model did not learn (accuracy {torch_acc}); chance is 0.10"

    session = Session(outcome.onnx_path)  # no mean/std given: the runtime reads them from the file
    assert session.metadata.mean == pytest.approx(CIFAR10_MEAN) and session.metadata.std == pytest.approx(CIFAR10_STD)
    predictions = session.predict(_hwc(images))  # raw uint8 HWC in, class indices out
    assert predictions.shape == (1000,) and predictions.dtype == np.int64
    onnx_acc = float((predictions == labels.numpy()).mean())
    assert abs(onnx_acc - torch_acc) <= 0.005, (onnx_acc, torch_acc)

    # Control: the same weights with the normalization left out of the metadata predict differently,
    # so the agreement above is the metadata's doing.
    bare = tmp_path / "bare.onnx"
    export_onnx(result.model, bare, input_size=(3, 32, 32),
                metadata={"model": "task2", "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0],
                          "classes": list(CIFAR10_CLASSES), "version": "0.1.0"})
    assert float((Session(bare).predict(_hwc(images)) == predictions).mean()) < 0.6


def _hook_outputs(model: nn.Module, x: torch.Tensor, paths: list[str]) -> dict[str, np.ndarray]:
    modules = dict(model.named_modules())
    values: dict[str, np.ndarray] = {}
    handles = [modules[p].register_forward_hook(
        lambda _m, _i, out, p=p: values.__setitem__(p, out.detach().numpy().copy())) for p in paths]
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return values


def test_asking_for_a_tensor_by_module_path(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = get_model("task2").eval()
    path = tmp_path / "task2.onnx"
    export_onnx(model, path, input_size=(3, 32, 32),
                metadata={"model": "task2", "mean": list(CIFAR10_MEAN), "std": list(CIFAR10_STD),
                          "classes": list(CIFAR10_CLASSES), "version": "0.1.0"})
    wanted = [name for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.ReLU, nn.MaxPool2d))]
    assert len(wanted) == 3 + 4 + 3  # 3 conv blocks of Conv/ReLU/MaxPool, and the ReLU after Dense 64

    raw = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    x = normalize(raw, CIFAR10_MEAN, CIFAR10_STD)  # (5, 3, 32, 32)
    session = Session(path)
    assert set(wanted) <= set(session.layer_names())
    got = session.intermediates(x.numpy(), wanted)
    expected = _hook_outputs(model, x, wanted)
    assert list(got) == wanted
    for name in wanted:
        assert got[name].shape == expected[name].shape, name
        np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-5, err_msg=name)
    # the pooled maps really are different tensors, not one output returned under every name
    assert got["features.2"].shape == (5, 32, 16, 16) and got["features.8"].shape == (5, 128, 4, 4)

    with pytest.raises(UnknownLayerError, match=r"unknown layer names \['features\.99'\]: expected names from "
                                                r"\[.*'features\.0'.*'classifier\.2'.*\]"):
        session.intermediates(x.numpy(), ["features.0", "features.99"])


def _batchnorm_paths(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def test_export_checkpoint_reports_each_batchnorm_and_matches_torch(cifar_once, tmp_path: Path) -> None:
    model = net1_with_running_stats()
    ckpt = save_net1_checkpoint(tmp_path / "checkpoint.pt", model)
    outcome = export_checkpoint(ckpt, tmp_path / "net1.onnx", images=64, batch_sizes=(1, 7, 64))

    assert outcome.passed and outcome.report_path == tmp_path / "net1.json"
    report = json.loads(outcome.report_path.read_text())
    assert report == json.loads(json.dumps(outcome.report))  # the file is the report
    entries = {e["bn"]: e for e in report["fold"]["entries"]}
    assert sorted(entries) == sorted(_batchnorm_paths(model))  # every BatchNorm, each once
    modules = dict(model.named_modules())
    for entry in entries.values():
        if entry["action"] == "folded":
            assert isinstance(modules[entry["into"]], (nn.Conv2d, nn.Linear)), entry
        else:
            assert entry["action"] == "kept" and entry["into"] is None and entry["reason"], entry
    # BN after ReLU: forward through MaxPool/Flatten into the next Linear folds; into a zero-padded Conv it cannot
    assert entries["features.10"]["into"] == "classifier.1" and entries["classifier.3"]["into"] == "classifier.4"
    for kept in ("features.2", "features.6"):
        assert entries[kept]["action"] == "kept" and "zero padding" in entries[kept]["reason"]
    assert report["batchnorm_folded"] == 2 and report["batchnorm_nodes"] == 2
    assert report["passed"] is True and report["failures"] == [] and report["max_abs_diff"] <= 1e-4

    # independently of the report: the file computes what the torch model computes on real images
    images = cifar_once.test_images[:64]
    x = normalize(images, CIFAR10_MEAN, CIFAR10_STD)  # (64, 3, 32, 32)
    with torch.inference_mode():
        expected = model(x).numpy()
    np.testing.assert_allclose(Session(outcome.onnx_path).run(x.numpy()), expected, rtol=0, atol=1e-4)


def test_failing_validation_leaves_a_report(cifar_once, tmp_path: Path) -> None:
    ckpt = save_net1_checkpoint(tmp_path / "checkpoint.pt", net1_with_running_stats())
    outcome = export_checkpoint(ckpt, tmp_path / "net1.onnx", images=32, batch_sizes=(1, 7), atol=1e-12)
    assert not outcome.passed
    report = json.loads((tmp_path / "net1.json").read_text())
    assert report["passed"] is False and report["atol"] == 1e-12
    assert report["max_abs_diff"] > 1e-12
    assert report["failures"] and all("max abs diff" in f and "> atol 1e-12" in f for f in report["failures"])
    assert "diagnosis" in report  # a failed export says where it first differs
    assert (tmp_path / "net1.onnx").is_file()  # the file stays for inspection
