"""The machine and software a benchmark ran on, written beside its numbers."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any

__all__ = ["collect_environment", "cpu_model", "cpu_flags"]

# Instruction-set flags that change how fast conv/matmul kernels can be; the full list is noise.
_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
    "avx_vnni", "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve",
)
_DISTRIBUTIONS = ("torch", "onnx", "onnxruntime", "onnxruntime-gpu", "onnxscript", "numpy")


def _cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return ""


def cpu_model() -> str:
    """Marketing name of the CPU ("model name" in /proc/cpuinfo), else ``platform.processor()``."""
    for line in _cpuinfo().splitlines():
        if line.split(":")[0].strip() in ("model name", "Model", "Hardware"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The performance-relevant instruction-set flags this CPU reports."""
    for line in _cpuinfo().splitlines():
        if line.split(":")[0].strip() in ("flags", "Features"):
            present = set(line.split(":", 1)[1].split())
            return [flag for flag in _FLAGS if flag in present]
    return []


def _versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in _DISTRIBUTIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def collect_environment() -> dict[str, Any]:
    """CPU model and flags, core counts, OS, Python and the versions of every engine involved."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpus_available": affinity,
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "versions": _versions(),
    }
