"""Error classes of the ``benchmarks`` package.

Every message is one line: what was expected, what was given, and how to fix it.
"""

from __future__ import annotations

__all__ = ["BenchmarkError", "BenchmarkInputError", "MemoryProbeError", "RecordError"]


class BenchmarkError(Exception):
    """Base class of every error raised by the ``benchmarks`` package."""


class BenchmarkInputError(BenchmarkError, ValueError):
    """An argument given to the benchmark (images, labels, batch sizes, counts, provider) is unusable."""


class MemoryProbeError(BenchmarkError):
    """The child process that measures an engine's peak memory failed or printed no result."""


class RecordError(BenchmarkError, ValueError):
    """A benchmark record (JSON dict) is missing keys or has a schema version this code cannot read."""
