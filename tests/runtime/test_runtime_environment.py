"""check_environment: versions, providers proven usable, CPU facts, and conflicting installs."""

from __future__ import annotations

import importlib.metadata
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from runtime import check_environment, environment


def test_report_has_versions_providers_and_cpu() -> None:
    report = check_environment()
    assert report["onnxruntime"] == ort.__version__
    assert report["onnx"] == onnx.__version__
    assert report["numpy"] == np.__version__
    assert report["providers_available"] == ort.get_available_providers()
    assert "CPUExecutionProvider" in report["providers_usable"]
    assert report["cpu"]["cores_logical"] == os.cpu_count()
    assert set(report["cpu"]["flags"]) <= set(environment.CPU_FLAGS)
    assert set(report["thread_env"]) == set(environment.THREAD_ENV_VARS)


def test_probe_model_bytes_are_the_onnx_helper_model() -> None:
    """The provider probe is stored as bytes so the doctor report needs no onnx; they must stay this model."""
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])],
        "probe",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)])
    model.ir_version = 8
    assert onnx.load_from_string(environment._PROBE_MODEL) == model
    onnx.checker.check_model(onnx.load_from_string(environment._PROBE_MODEL))


def test_torch_version_read_without_importing_torch() -> None:
    try:
        expected = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        expected = None
    assert check_environment()["torch"] == expected


def test_thread_variables_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert check_environment()["thread_env"]["OMP_NUM_THREADS"] == "3"


def test_real_distribution_lookup_finds_this_onnxruntime() -> None:
    found = environment.installed_onnxruntime_distributions()
    assert found and all(name in environment.ONNXRUNTIME_DISTRIBUTIONS for name in found)
    assert ort.__version__ in found.values()


def test_two_onnxruntime_packages_are_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = {"onnxruntime": "1.20.0", "onnxruntime-gpu": "1.20.1"}
    monkeypatch.setattr(environment, "installed_onnxruntime_distributions", lambda: fake)
    report = check_environment()
    assert report["onnxruntime_distributions"] == fake
    (problem,) = [p for p in report["problems"] if "are installed" in p]
    assert "both onnxruntime 1.20.0 and onnxruntime-gpu 1.20.1 are installed" in problem
    assert "share the one `onnxruntime` module" in problem
    repair = "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu   # or onnxruntime for CPU"
    assert repair in problem


def test_one_package_is_not_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(environment, "installed_onnxruntime_distributions", lambda: {"onnxruntime-gpu": "1.20.1"})
    assert not [p for p in check_environment()["problems"] if "are installed" in p]


def test_listed_but_unusable_provider_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    if "CUDAExecutionProvider" in environment.usable_providers(["CUDAExecutionProvider"])[0]:
        pytest.skip("CUDA really works here")
    # Listed as available (as onnxruntime-gpu lists it), CUDA is attempted, and onnxruntime settles for CPU.
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    report = check_environment()
    assert report["providers_usable"] == ["CPUExecutionProvider"]
    assert "CUDAExecutionProvider" in report["provider_failures"]["CUDAExecutionProvider"]
    (problem,) = [p for p in report["problems"] if "could not be activated" in p]
    assert problem.startswith("CUDAExecutionProvider is listed by onnxruntime but could not be activated: ")
