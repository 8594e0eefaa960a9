"""What our ``runtime.Session`` costs on top of raw onnxruntime, and the whole uint8 -> class pipeline.

Both are measured side by side, never from two separate passes: after warm-up of both paths, short
blocks of one path and then the other alternate over several rounds, and the order flips every round
(raw first, then wrapped first), so slow drifts (frequency scaling, a neighbour's load) hit both
alike. Each round gives one figure (an overhead percent, a throughput ratio); the reported value is
the median over rounds, with the spread across rounds recorded beside it.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.stats import spread, summarize_ns
from benchmarks.timing import time_calls
from runtime import Session

__all__ = [
    "OVERHEAD_BATCH_SIZES", "OVERHEAD_MIN_RUNS", "OVERHEAD_BLOCK_CALLS", "PIPELINE_BATCH_SIZE",
    "PIPELINE_BATCHES_PER_ROUND", "overhead_runs", "overhead_blocks", "measure_overhead", "overhead_percent",
    "measure_pipeline",
]

OVERHEAD_BATCH_SIZES = (1, 64)
# Timed calls per path at least: at batch 1 the checks cost microseconds of a few hundred, and on a CPU
# shared with other work single batch-64 calls vary by tens of percent, so small samples are all noise.
OVERHEAD_MIN_RUNS = {1: 400, 64: 100}
# Calls per block: blocks of a few milliseconds, so the two paths of one round see the same load on a
# shared CPU; a batch of 64 takes milliseconds on its own, so its rounds are single calls.
OVERHEAD_BLOCK_CALLS = {1: 20}
PIPELINE_BATCH_SIZE = 64
PIPELINE_BATCHES_PER_ROUND = 1  # one batch of 64 per path per round, the same images on both

Call = Callable[[], object]


def overhead_runs(batch_size: int, runs: int) -> int:
    """Timed calls per path for the overhead comparison at ``batch_size`` (``runs``, raised to the floor)."""
    return max(runs, OVERHEAD_MIN_RUNS.get(batch_size, 0))


def overhead_blocks(batch_size: int, runs: int) -> tuple[int, int]:
    """(rounds, calls per block) covering at least ``overhead_runs(batch_size, runs)`` calls per path."""
    calls = OVERHEAD_BLOCK_CALLS.get(batch_size, 1)
    return math.ceil(overhead_runs(batch_size, runs) / calls), calls


def measure_overhead(
    session: Session, batches: dict[int, np.ndarray], *, warmup: int, runs: int
) -> tuple[dict[int, dict[str, Any]], dict[int, float]]:
    """Per batch size: both paths' latency, the per-round overheads, and their median in percent.

    ``raw_run`` is ``InferenceSession.run`` called exactly as ``Session`` calls it; ``session_run`` is
    ``Session.run`` (checks included). Each path gets ``warmup`` untimed calls, then
    ``overhead_runs(batch, runs)`` timed calls (rounded up to whole rounds) in alternating blocks of
    ``OVERHEAD_BLOCK_CALLS`` calls; each round's overhead compares the medians of its two blocks.
    """
    raw = session.inference_session
    input_name, outputs = raw.get_inputs()[0].name, [raw.get_outputs()[0].name]
    details: dict[int, dict[str, Any]] = {}
    overhead: dict[int, float] = {}
    for batch_size, x in batches.items():
        rounds, calls = overhead_blocks(batch_size, runs)
        details[batch_size] = _interleave(
            lambda x=x: raw.run(outputs, {input_name: x}), lambda x=x: session.run(x),
            warmup=warmup, rounds=rounds, calls=calls,
        )
        overhead[batch_size] = details[batch_size]["overhead_pct_median"]
    return details, overhead


def _interleave(raw: Call, wrapped: Call, *, warmup: int, rounds: int, calls: int) -> dict[str, Any]:
    """Warm both up, then ``rounds`` rounds of one block of ``calls`` per path, the order flipping each round."""
    for call in (raw, wrapped):
        time_calls(call, warmup=warmup, runs=0)  # warm-up only: nothing is timed
    durations: dict[str, list[int]] = {"raw_run": [], "session_run": []}
    per_round_pct = []
    for round_index in range(rounds):
        order = [("raw_run", raw), ("session_run", wrapped)]
        block = {name: time_calls(call, warmup=0, runs=calls)
                 for name, call in (order if round_index % 2 == 0 else order[::-1])}
        for name, timed in block.items():
            durations[name] += timed
        per_round_pct.append(overhead_percent(statistics.median(block["session_run"]),
                                              statistics.median(block["raw_run"])))
    return {
        **{name: summarize_ns(d).to_dict() for name, d in durations.items()},
        "warmup": warmup, "rounds": rounds, "calls_per_block": calls,
        "order": "alternating blocks, raw first in even rounds, Session first in odd rounds",
        "overhead_pct_median": statistics.median(per_round_pct),
        "overhead_pct_spread": spread(per_round_pct),
        "overhead_pct_per_round": per_round_pct,
    }


def overhead_percent(wrapped: float, raw: float) -> float:
    """How much slower the wrapped call is than the raw one, in percent of the raw latency."""
    return (wrapped - raw) / raw * 100.0 if raw > 0 else float("nan")


def measure_pipeline(
    session: Session, hwc_images: np.ndarray, labels: np.ndarray, *,
    prepare: Callable[[int, int], np.ndarray], warmup: int,
) -> dict[str, Any]:
    """images/s of ``Session.predict`` on uint8 HWC images beside raw onnxruntime on prepared batches.

    Both paths see the same images in batches of ``PIPELINE_BATCH_SIZE``: the raw path runs
    ``InferenceSession.run`` on ``prepare(start, stop)`` (float32 NCHW, prepared outside the timer);
    the pipeline runs ``Session.predict`` on ``hwc_images[start:stop]`` (preprocessing, checks and
    argmax included). Rounds of ``PIPELINE_BATCHES_PER_ROUND`` batches alternate the two paths after
    ``warmup`` untimed batches of each. ``ratio`` is the median over rounds of raw time / pipeline
    time (1.0: the pipeline costs nothing extra); ``pipeline_ips`` and ``raw_ips`` are totals.
    """
    raw = session.inference_session
    input_name, outputs = raw.get_inputs()[0].name, [raw.get_outputs()[0].name]
    n, size = len(hwc_images), PIPELINE_BATCH_SIZE

    def run_raw(batches: list[np.ndarray]) -> list[np.ndarray]:
        return [raw.run(outputs, {input_name: x})[0] for x in batches]  # (B, K) logits each

    def run_pipeline(photos: list[np.ndarray]) -> list[np.ndarray]:
        return [session.predict(p, batch_size=size) for p in photos]  # (B,) class indices each

    for _ in range(warmup):
        run_raw([prepare(0, min(size, n))])
        run_pipeline([hwc_images[:size]])
    starts = list(range(0, n, size))
    rounds = [starts[i : i + PIPELINE_BATCHES_PER_ROUND] for i in range(0, len(starts), PIPELINE_BATCHES_PER_ROUND)]
    spent = {"raw": 0, "pipeline": 0}
    ratios: list[float] = []
    results: dict[str, list[np.ndarray]] = {"raw": [], "pipeline": []}
    for round_index, block in enumerate(rounds):
        paths = [("raw", run_raw, [prepare(s, min(s + size, n)) for s in block]),  # untimed preparation
                 ("pipeline", run_pipeline, [hwc_images[s : s + size] for s in block])]  # (B, H, W, C) uint8
        took = {}
        for name, run, inputs in paths if round_index % 2 == 0 else paths[::-1]:
            start = time.perf_counter_ns()
            got = run(inputs)
            took[name] = time.perf_counter_ns() - start
            results[name] += got
        spent = {name: spent[name] + took[name] for name in spent}
        ratios.append(took["raw"] / took["pipeline"])
    predictions = np.concatenate(results["pipeline"])
    raw_predictions = np.argmax(np.concatenate(results["raw"]), axis=1)  # outside the timer
    pipeline_ips, raw_ips = n / (spent["pipeline"] / 1e9), n / (spent["raw"] / 1e9)
    return {
        "images": int(n), "batch_size": size, "warmup_batches": warmup, "rounds": len(rounds),
        "batches_per_round": PIPELINE_BATCHES_PER_ROUND,
        "order": "alternating blocks, raw first in even rounds, pipeline first in odd rounds",
        "raw_seconds": spent["raw"] / 1e9, "pipeline_seconds": spent["pipeline"] / 1e9,
        "pipeline_ips": pipeline_ips, "raw_ips": raw_ips,
        "ratio": statistics.median(ratios), "ratio_spread": spread(ratios), "ratio_per_round": ratios,
        "ratio_of_totals": pipeline_ips / raw_ips,
        "accuracy": float(np.mean(predictions == labels)),
        "top1_agreement_with_raw": float(np.mean(predictions == raw_predictions)),
    }
