"""``check_environment``: the facts behind "why is this slow / why is CUDA not used" (doctor data).

Everything is read without importing torch or onnx (their versions come from package metadata), and
each available provider is proven usable by opening a tiny in-memory model on it.
"""

from __future__ import annotations

import logging
import os
import platform
import re
from typing import Any

import numpy as np
import onnxruntime as ort

from runtime.providers import OutputCapture, reason_from_log

__all__ = ["check_environment", "installed_onnxruntime_distributions", "usable_providers"]

logger = logging.getLogger(__name__)

# Every one of these installs the same top-level `onnxruntime` module, so two of them overwrite each other.
ONNXRUNTIME_DISTRIBUTIONS = (
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-directml",
    "onnxruntime-openvino",
    "onnxruntime-qnn",
    "onnxruntime-rocm",
    "onnxruntime-migraphx",
    "onnxruntime-cann",
    "onnxruntime-training",
    "onnxruntime-silicon",
    "ort-nightly",
    "ort-nightly-gpu",
)
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY", "KMP_AFFINITY")
CPU_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx_vnni",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
    "neon",
    "asimd",
)  # x86 then ARM names, as /proc/cpuinfo spells them

# A one-node Identity model, old enough in IR (8) and opset (13) for any onnxruntime we meet, as the
# bytes onnx.helper serializes it to (a test rebuilds it with onnx and compares): building it here
# would import onnx, ~20 MB resident, for a few bytes.
_PROBE_MODEL = (
    b"\x08\x08"  # ir_version 8
    b":;"  # graph, 59 bytes:
    b'\n\x10\n\x01x\x12\x01y"\x08Identity'  #   node Identity(x) -> y
    b"\x12\x05probe"  #   name "probe"
    b"Z\x0f\n\x01x\x12\n\n\x08\x08\x01\x12\x04\n\x02\x08\x01"  #   input x: float [1]
    b"b\x0f\n\x01y\x12\n\n\x08\x08\x01\x12\x04\n\x02\x08\x01"  #   output y: float [1]
    b"B\x04\n\x00\x10\r"  # opset_import: domain "", version 13
)


def check_environment() -> dict[str, Any]:
    """Versions, providers (available and really usable), CPU, thread variables and known problems."""
    distributions = installed_onnxruntime_distributions()
    available = ort.get_available_providers()
    usable, failures = usable_providers(available)
    problems = _distribution_problems(distributions)
    problems += [f"{name} is listed by onnxruntime but could not be activated: {why}" for name, why in failures.items()]
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "onnxruntime": ort.__version__,
        "onnx": _distribution_version("onnx"),
        "numpy": np.__version__,
        "torch": _distribution_version("torch"),
        "onnxruntime_distributions": distributions,
        "providers_available": available,
        "providers_usable": usable,
        "provider_failures": failures,
        "cpu": cpu_info(),
        "thread_env": {name: os.environ.get(name) for name in THREAD_ENV_VARS},
        "onnxruntime_threads": _default_ort_threads(),
        "problems": problems,
    }


def _default_ort_threads() -> dict[str, Any]:
    """The thread settings a plain ``InferenceSession`` gets, as ``runtime.Session`` does unless told otherwise
    (0 = onnxruntime picks: one intra-op thread per physical core)."""
    options = ort.SessionOptions()
    return {
        "intra_op_default": options.intra_op_num_threads,
        "inter_op_default": options.inter_op_num_threads,
        "execution_mode": str(options.execution_mode).rsplit(".", 1)[-1],
    }


def installed_onnxruntime_distributions() -> dict[str, str]:
    """Installed distributions that provide the ``onnxruntime`` module: normalized name -> version."""
    import importlib.metadata  # here, not at the top: ~2 MB resident that only this report needs

    found: dict[str, str] = {}
    for distribution in importlib.metadata.distributions():
        name = re.sub(r"[-_.]+", "-", (distribution.metadata["Name"] or "")).lower()
        if name in ONNXRUNTIME_DISTRIBUTIONS and name not in found:  # first on sys.path wins, like import
            found[name] = distribution.version
    return found


def usable_providers(available: list[str]) -> tuple[list[str], dict[str, str]]:
    """(providers that really activate on a tiny model, {provider: why not} for the others)."""
    model = _PROBE_MODEL
    usable: list[str] = []
    failures: dict[str, str] = {}
    for name in available:
        chain = [name] if name == "CPUExecutionProvider" else [name, "CPUExecutionProvider"]
        capture = OutputCapture(enabled=name != "CPUExecutionProvider")
        with capture:
            try:
                active = ort.InferenceSession(model, providers=chain).get_providers()
            except Exception as exc:  # any failure means "not usable"; the reason is what matters
                active, error = [], " ".join(str(exc).split())
            else:
                error = ""
        if name in active:
            usable.append(name)
        else:
            why = error or reason_from_log(capture.text) or " ".join(capture.text.split())[:400]
            failures[name] = why or "onnxruntime fell back to CPU without a message"
    return usable, failures


def cpu_info() -> dict[str, Any]:
    """CPU model, the SIMD flags that matter for inference speed, and core counts."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        text = ""
    if match := re.search(r"^model name\s*:\s*(.+)$", text, flags=re.MULTILINE):
        model = match.group(1).strip()
    if match := re.search(r"^(?:flags|Features)\s*:\s*(.+)$", text, flags=re.MULTILINE):
        flags = set(match.group(1).split())
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    # (physical id, core id) pairs: hyper-threads share one; onnxruntime's default intra-op pool has one
    # thread per physical core
    cores = set(re.findall(r"^physical id\s*:\s*(\d+)$[\s\S]*?^core id\s*:\s*(\d+)$", text, flags=re.MULTILINE))
    return {
        "model": model,
        "flags": [flag for flag in CPU_FLAGS if flag in flags],
        "cores_logical": os.cpu_count(),
        "cores_physical": len(cores) or None,
        "cores_usable": usable,
    }


def _distribution_problems(distributions: dict[str, str]) -> list[str]:
    if len(distributions) < 2:
        return []
    listed = " and ".join(f"{name} {version}" for name, version in distributions.items())
    names = " ".join(sorted(set(distributions) | {"onnxruntime", "onnxruntime-gpu"}))
    quantity = "both" if len(distributions) == 2 else "all of"
    return [
        f"{quantity} {listed} are installed; they share the one `onnxruntime` module, so the files of one "
        f"overwrote the other's and the providers you get are unpredictable; repair: "
        f"pip uninstall -y {names} && pip install onnxruntime-gpu   # or onnxruntime for CPU"
    ]


def _distribution_version(name: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
