"""Benchmarks: accuracy, latency, throughput and memory of a torch model against its ONNX export.

The public names are imported lazily (PEP 562) so that ``python -m benchmarks.memory --engine onnx``
measures onnxruntime's memory without torch having been imported by this package first.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "run_benchmark",
    "check_provider",
    "estimate_seconds",
    "BenchResult",
    "SCHEMA_VERSION",
    "write_record",
    "read_record",
    "compare_records",
    "format_comparison",
    "plot_record",
    "torch_probe_command",
    "BenchmarkError",
    "BenchmarkInputError",
    "MemoryProbeError",
    "RecordError",
]

_HOMES = {
    "run_benchmark": "benchmarks.bench",
    "check_provider": "benchmarks.inputs",
    "estimate_seconds": "benchmarks.estimate",
    "BenchResult": "benchmarks.record",
    "SCHEMA_VERSION": "benchmarks.record",
    "write_record": "benchmarks.record",
    "read_record": "benchmarks.record",
    "compare_records": "benchmarks.compare",
    "format_comparison": "benchmarks.compare",
    "plot_record": "benchmarks.plot",
    "torch_probe_command": "benchmarks.memory",
    "BenchmarkError": "benchmarks.errors",
    "BenchmarkInputError": "benchmarks.errors",
    "MemoryProbeError": "benchmarks.errors",
    "RecordError": "benchmarks.errors",
}

if TYPE_CHECKING:
    from benchmarks.bench import run_benchmark
    from benchmarks.compare import compare_records, format_comparison
    from benchmarks.errors import BenchmarkError, BenchmarkInputError, MemoryProbeError, RecordError
    from benchmarks.estimate import estimate_seconds
    from benchmarks.inputs import check_provider
    from benchmarks.memory import torch_probe_command
    from benchmarks.plot import plot_record
    from benchmarks.record import SCHEMA_VERSION, BenchResult, read_record, write_record


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'benchmarks' has no attribute {name!r}; public names: {', '.join(__all__)}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
