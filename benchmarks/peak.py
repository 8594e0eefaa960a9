"""The machine's practical fp32 peak: a square float32 matmul timed with the benchmark's thread count.

A vendor's theoretical peak (cores * GHz * FMA width) is rarely reachable; a large BLAS matmul is
the usual practical ceiling against which a model's achieved GFLOP/s is read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from benchmarks.errors import BenchmarkInputError
from benchmarks.timing import Measure, wall_ns

__all__ = ["PeakProbe", "measure_peak"]


@dataclass(frozen=True)
class PeakProbe:
    """Result of the matmul probe: size n of the (n, n) @ (n, n) product, its best time and GFLOP/s."""

    size: int
    repeats: int
    threads: int
    device: str
    best_s: float
    median_s: float
    gflops: float
    library: str = "torch.matmul float32"

    def to_dict(self) -> dict[str, object]:
        """Plain dict for the JSON record."""
        return asdict(self)


def measure_peak(threads: int, *, size: int = 2048, repeats: int = 5, device: str = "cpu") -> PeakProbe:
    """Time ``repeats`` matmuls of two (size, size) float32 matrices (one warm-up first); best time wins.

    Counts 2 * size**3 floating-point operations per product (one multiply and one add per MAC).
    """
    if size < 1 or repeats < 1:
        raise BenchmarkInputError(f"expected peak probe size >= 1 and repeats >= 1, got size={size} repeats={repeats}")
    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(size, size, generator=generator).to(device)  # (n, n)
    b = torch.rand(size, size, generator=generator).to(device)  # (n, n)
    measure: Measure = wall_ns
    if device == "cuda":
        from benchmarks.torch_runner import cuda_event_ns  # only here: the CPU path needs no CUDA helpers

        measure = cuda_event_ns
    torch.matmul(a, b)  # warm-up: BLAS thread pool start and first-touch of the output
    times = sorted(measure(lambda: torch.matmul(a, b)) / 1e9 for _ in range(repeats))
    best = times[0]
    return PeakProbe(
        size=size, repeats=repeats, threads=threads, device=device, best_s=best,
        median_s=times[len(times) // 2], gflops=2.0 * size**3 / best / 1e9,
    )
