"""Providers: unknown names, and "cuda" raising unless CUDA is really active."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from runtime import ProviderError, Session
from runtime.providers import OutputCapture, reason_from_log

CUDA_LOAD_FAILURE = (
    "2025-01-01 10:00:00.000 [E:onnxruntime:Default, provider_bridge_ort.cc:2251 TryGetProviderInfo_CUDA] "
    "/onnxruntime_src/onnxruntime/core/session/provider_bridge_ort.cc:1844 onnxruntime::Provider& "
    "onnxruntime::ProviderLibrary::Get() [ONNXRuntimeError] : 1 : FAIL : Failed to load library "
    "libonnxruntime_providers_cuda.so with error: libcublasLt.so.12: cannot open shared object file: "
    "No such file or directory"
)


def test_unknown_provider_lists_valid_names(conv_model_path: Path) -> None:
    with pytest.raises(ProviderError, match=r"unknown provider 'tensorrt': expected one of \['cpu', 'cuda'\]"):
        Session(conv_model_path, provider="tensorrt")


def test_unknown_provider_fails_before_the_file_is_read(tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match=r"unknown provider 'CPU'"):
        Session(tmp_path / "missing.onnx", provider="CPU")


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="this build has CUDA")
def test_cuda_on_cpu_build_is_an_error(conv_model_path: Path) -> None:
    with pytest.raises(ProviderError, match=r"CUDA is not active: .* has no CUDAExecutionProvider") as error:
        Session(conv_model_path, provider="cuda")
    message = str(error.value)
    assert "'CPUExecutionProvider'" in message and "pip install onnxruntime-gpu" in message
    assert "\n" not in message


def test_cuda_silent_fallback_is_caught(conv_model_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The onnxruntime-gpu case without usable CUDA: CUDA is listed, the session quietly runs on CPU."""
    if _cuda_really_works(conv_model_path):
        pytest.skip("CUDA really works here")
    # Listing CUDA as available makes onnxruntime attempt it, warn, and settle for CPU, as the gpu package does.
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    descriptors = [(os.fstat(fd).st_dev, os.fstat(fd).st_ino) for fd in (1, 2)]
    with pytest.raises(ProviderError, match=r"CUDA is not active: .*CUDAExecutionProvider") as error:
        Session(conv_model_path, provider="cuda")
    assert "active providers: ['CPUExecutionProvider']" in str(error.value)
    assert "\n" not in str(error.value)
    # the capture of onnxruntime's output put stdout/stderr back, and CPU sessions still work
    assert [(os.fstat(fd).st_dev, os.fstat(fd).st_ino) for fd in (1, 2)] == descriptors
    assert Session(conv_model_path).run(np.zeros((1, 3, 32, 32), np.float32)).shape == (1, 10)


def _cuda_really_works(path: Path) -> bool:
    try:
        Session(path, provider="cuda")
    except ProviderError:
        return False
    return True


def test_capture_reads_native_stderr_and_stdout() -> None:
    with OutputCapture() as capture:
        os.write(2, (CUDA_LOAD_FAILURE + "\n").encode())
        os.write(1, b"native stdout line\n")
        print("python print")
    assert CUDA_LOAD_FAILURE in capture.text
    assert "native stdout line" in capture.text and "python print" in capture.text


def test_disabled_capture_passes_output_through(capfd: pytest.CaptureFixture[str]) -> None:
    with OutputCapture(enabled=False) as capture:
        os.write(2, b"left alone\n")
    assert capture.text == "" and "left alone" in capfd.readouterr().err


def test_reason_names_the_library_that_failed() -> None:
    log = "some unrelated line\n" + CUDA_LOAD_FAILURE + "\nanother line"
    reason = reason_from_log(log)
    assert "libcublasLt.so.12: cannot open shared object file" in reason
    assert not reason.startswith("2025")  # onnxruntime's timestamp/severity prefix is dropped
    assert reason_from_log("") == ""
