"""How long ``run_benchmark`` will take, estimated before it starts from two quick torch forwards."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Sequence

import torch
from torch import nn

from benchmarks.memory import SCENARIOS
from benchmarks.overhead import OVERHEAD_BATCH_SIZES, PIPELINE_BATCH_SIZE, overhead_runs

__all__ = ["measure_cost", "estimate_from_cost", "estimate_seconds"]

# Fixed costs seen on small CPUs: matmul probe, session creation, one memory child per scenario (0.3 s for
# onnxruntime to 2.1 s for the one that imports torch, for the Task 2 CNN on 2 cores).
_PEAK_PROBE_S = 2.0
_SESSION_S = 1.0
_MEMORY_CHILD_S = 2.0
_COST_SAMPLES = 5
_PIPELINE_FACTOR = 1.5  # Session.predict also resizes and normalizes in numpy


def measure_cost(model: nn.Module, input_size: Sequence[int], *, threads: int) -> tuple[float, float]:
    """(fixed ms, ms per image) of one torch forward, fitted from the median of a few forwards at batch 1 and
    batch 8 (after one warm-up each)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = model.eval()
        timings = {}
        with torch.inference_mode():
            for batch in (1, 8):
                x = torch.zeros(batch, *input_size)  # (B, C, H, W)
                model(x)  # warm-up: the first forward pays one-off costs (allocation, kernel choice)
                samples = []
                for _ in range(_COST_SAMPLES):
                    start = time.perf_counter()
                    model(x)
                    samples.append((time.perf_counter() - start) * 1e3)
                timings[batch] = statistics.median(samples)  # one slow call on a shared machine must not count
    finally:
        torch.set_num_threads(previous)
    per_image = (timings[8] - timings[1]) / 7
    if per_image <= 0:  # timer noise on a tiny model: charge batch 8's cost to every image
        return 0.0, timings[8] / 8
    return max(timings[1] - per_image, 0.0), per_image


def estimate_from_cost(
    fixed_ms: float,
    per_image_ms: float,
    *,
    n_images: int,
    batch_sizes: Sequence[int] = (1, 8, 64, 256),
    runs: int = 50,
    warmup: int = 10,
    time_budget_s: float | None = None,
    engines: int = 2,
    memory: bool = True,
) -> float:
    """Seconds for a benchmark whose forward at batch b costs ``fixed_ms + b * per_image_ms``.

    Assumes onnxruntime costs what torch does: each of ``engines`` times every batch size (warm-up plus
    ``runs``, or warm-up plus the budget), computes logits over all images, and onnxruntime adds the
    overhead comparison (both paths, at least ``overhead_runs`` calls each) and the pipeline comparison
    (raw and pipeline over every image).
    """
    def forward_s(batch: int) -> float:
        return (fixed_ms + batch * per_image_ms) / 1e3

    timed = sum(warmup * forward_s(b) + (time_budget_s if time_budget_s else runs * forward_s(b))
                for b in batch_sizes)
    passes = n_images / PIPELINE_BATCH_SIZE * forward_s(PIPELINE_BATCH_SIZE)  # one pass over every image
    overhead = sum(2 * (warmup + overhead_runs(b, runs)) * forward_s(b) for b in OVERHEAD_BATCH_SIZES)
    fixed = _PEAK_PROBE_S + _SESSION_S + (len(SCENARIOS) * _MEMORY_CHILD_S if memory else 0.0)
    return engines * (timed + passes) + overhead + (1 + _PIPELINE_FACTOR) * passes + fixed


def estimate_seconds(
    model: nn.Module,
    *,
    input_size: Sequence[int],
    n_images: int,
    batch_sizes: Sequence[int] = (1, 8, 64, 256),
    runs: int = 50,
    warmup: int = 10,
    time_budget_s: float | None = None,
    threads: int | None = None,
    memory: bool = True,
    provider: str = "cpu",
) -> float:
    """Rough wall-clock seconds ``run_benchmark`` will take with these arguments (CPU cost model).

    Times two torch forwards (batch 1 and 8) to fit the cost model; ``input_size`` is (C, H, W) as fed
    to the model (after any resize). On CUDA the CPU timing overestimates, which errs on the safe side.
    """
    fixed_ms, per_image_ms = measure_cost(model, input_size, threads=threads or os.cpu_count() or 1)
    return estimate_from_cost(
        fixed_ms, per_image_ms, n_images=n_images, batch_sizes=batch_sizes, runs=runs, warmup=warmup,
        time_budget_s=time_budget_s, engines=4 if provider == "cuda" else 2, memory=memory,
    )
