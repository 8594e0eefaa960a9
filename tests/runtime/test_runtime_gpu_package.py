"""The real onnxruntime-gpu package on a machine where CUDA cannot load.

onnxruntime-gpu lists CUDAExecutionProvider as available even when libcublas/libcudnn or the GPU are
missing, then silently runs on CPU. This test builds (once, cached) a separate venv with that package
and proves ``Session(provider="cuda")`` raises there instead of quietly falling back.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV = Path.home() / ".cache" / "toolkit-tests" / "ort-gpu-venv"
PROBE = "import onnxruntime, numpy; assert 'CUDAExecutionProvider' in onnxruntime.get_available_providers()"
# Not pinned to the main venv's onnxruntime (1.32.0): PyPI has no onnxruntime-gpu 1.32.0 (newest: 1.31.1).
# No onnx either: opening a Session and the doctor report run on onnxruntime + numpy alone.
INSTALL = ["onnxruntime-gpu", "numpy"]
SCRIPT = """
import json, sys
from runtime import ProviderError, Session, check_environment
try:
    session = Session(sys.argv[1], provider="cuda")
except ProviderError as error:
    print("PROVIDER_ERROR:", error)
else:
    print("CUDA_ACTIVE:", session.providers_active)
report = check_environment()
print("USABLE:", json.dumps(report["providers_usable"]))
print("PROBLEMS:", json.dumps(report["problems"]))
print("LOADED:", [m for m in ("torch", "click", "rich", "PIL", "onnx", "google.protobuf") if m in sys.modules])
"""


def _python() -> Path:
    return VENV / "bin" / "python"


def _venv_works() -> bool:
    if not _python().exists():
        return False
    return subprocess.run([_python(), "-c", PROBE], capture_output=True, timeout=120).returncode == 0


@pytest.fixture(scope="module")
def gpu_python() -> Iterator[Path]:
    """Python of a venv with onnxruntime-gpu and numpy (built once, reused while it works)."""
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(VENV.parent / "ort-gpu-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test runs must not build the same venv twice
        if not _venv_works():
            shutil.rmtree(VENV, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", VENV], check=True, timeout=300)
            install = subprocess.run(
                [_python(), "-m", "pip", "install", "--quiet", *INSTALL],
                capture_output=True,
                text=True,
                timeout=900,
            )
            if install.returncode != 0:
                shutil.rmtree(VENV, ignore_errors=True)
                pytest.skip(f"pip install onnxruntime-gpu failed (no network?): {install.stderr.strip()[-300:]}")
            assert _venv_works(), "onnxruntime-gpu installed but does not list CUDAExecutionProvider"
    yield _python()


@pytest.mark.slow
def test_cuda_with_onnxruntime_gpu_but_no_usable_cuda(gpu_python: Path, conv_model_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONPATH"] = str(ROOT)  # only `runtime` is imported from the tree; no torch in that venv
    result = subprocess.run(
        [gpu_python, "-c", SCRIPT, str(conv_model_path)], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in result.stdout.splitlines() if ":" in line}
    assert lines["LOADED"] == "[]"
    if "CUDA_ACTIVE" in lines:  # a machine with a working GPU: then CUDA must really be in the session
        assert "CUDAExecutionProvider" in lines["CUDA_ACTIVE"]
        return
    error = lines["PROVIDER_ERROR"]
    assert error.startswith("CUDA is not active: ")
    assert "'CPUExecutionProvider'" in error
    assert "available providers: [" in error and "CUDAExecutionProvider" in error
    # the reason comes from onnxruntime's own log (e.g. "libcublasLt.so.13: cannot open shared object file")
    assert "without logging why" not in error
    assert "CUDAExecutionProvider" not in lines["USABLE"]
    assert "CUDAExecutionProvider is listed by onnxruntime but could not be activated" in lines["PROBLEMS"]


@pytest.mark.slow
def test_toolkit_bench_cuda_with_onnxruntime_gpu_is_refused_before_any_torch_work(
    gpu_python: Path, conv_model_path: Path, tmp_path: Path
) -> None:
    # The CLI needs torch, which the onnxruntime-gpu venv lacks: run this venv's Python with the other venv's
    # site-packages first on the path, so `onnxruntime` (and numpy) come from onnxruntime-gpu.
    gpu_site = subprocess.run([gpu_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True, timeout=120).stdout.strip()
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONPATH"] = gpu_site
    missing_checkpoint = tmp_path / "never-read.pt"  # CUDA is checked before the checkpoint is opened
    result = subprocess.run(
        [sys.executable, "-m", "toolkit", "bench", str(missing_checkpoint), str(conv_model_path),
         "--provider", "cuda", "--no-memory"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stdout == "" and len(result.stderr.splitlines()) == 1, result.stderr
    error = result.stderr
    if "CUDA is not active" not in error:  # a machine with a working GPU: bench went on to the checkpoint
        assert f"checkpoint {missing_checkpoint} does not exist" in error
        return
    assert error.startswith("error: CUDA is not active: ")
    assert str(Path(gpu_site) / "onnxruntime") in error  # the onnxruntime-gpu build was the one loaded
    assert "active providers: ['CPUExecutionProvider']" in error
    assert "available providers: [" in error and "CUDAExecutionProvider" in error
    assert "cannot open shared object file" in error  # the library that failed to load, from onnxruntime
