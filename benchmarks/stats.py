"""Latency statistics: percentiles, mean and spread of a list of timed runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from benchmarks.errors import BenchmarkInputError

__all__ = ["LatencyStats", "summarize_ns", "spread"]


@dataclass(frozen=True)
class LatencyStats:
    """Latency of one engine at one batch size, in milliseconds, over ``runs`` timed runs.

    Percentiles use linear interpolation between the closest ranks (numpy's default), as
    onnxruntime_perf_test and optimum-benchmark report them; ``std`` is the population standard
    deviation (ddof=0) so a single run has spread 0 rather than NaN.
    """

    p50: float
    p90: float
    p99: float
    mean: float
    std: float
    runs: int

    def to_dict(self) -> dict[str, float | int]:
        """Plain dict for the JSON record."""
        return asdict(self)

    def throughput(self, batch_size: int) -> float:
        """Images per second implied by the mean latency: total images / total time of the timed runs."""
        return batch_size / (self.mean / 1e3) if self.mean > 0 else float("inf")


def summarize_ns(durations_ns: Sequence[int]) -> LatencyStats:
    """Summarize timed runs given in nanoseconds (as ``time.perf_counter_ns`` differences) as milliseconds."""
    if len(durations_ns) == 0:
        raise BenchmarkInputError("expected at least one timed run to summarize, got none; raise runs or time_budget_s")
    ms = np.asarray(durations_ns, dtype=np.float64) / 1e6  # (runs,)
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return LatencyStats(
        p50=float(p50), p90=float(p90), p99=float(p99), mean=float(ms.mean()), std=float(ms.std()), runs=len(ms)
    )


def spread(values: Sequence[float]) -> dict[str, float]:
    """min, quartiles, median and max of repeated measurements of one figure (e.g. one ratio per round)."""
    if len(values) == 0:
        raise BenchmarkInputError("expected at least one value to describe the spread of, got none")
    low, p25, median, p75, high = np.percentile(np.asarray(values, dtype=np.float64), [0, 25, 50, 75, 100])
    return {"min": float(low), "p25": float(p25), "median": float(median), "p75": float(p75), "max": float(high)}
