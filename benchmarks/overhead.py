"""What our ``runtime.Session`` costs on top of raw onnxruntime, and the whole uint8 -> class pipeline.

Both run inside the onnxruntime phase. The overhead comparison alternates short blocks of
``Session.run`` and raw ``InferenceSession.run`` so slow drifts (frequency scaling, a neighbour's
load) hit both sides alike.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.stats import summarize_ns
from benchmarks.timing import time_calls
from runtime import Session

__all__ = ["OVERHEAD_BATCH_SIZES", "PIPELINE_BATCH_SIZE", "measure_overhead", "measure_pipeline"]

OVERHEAD_BATCH_SIZES = (1, 64)
PIPELINE_BATCH_SIZE = 64
_BLOCKS = 5


def measure_overhead(
    session: Session, batches: dict[int, np.ndarray], *, warmup: int, runs: int
) -> tuple[dict[int, dict[str, Any]], dict[int, float]]:
    """Per batch size: latency stats of both paths, and overhead percent of ``Session.run`` on p50.

    Each path gets ``runs`` timed calls (rounded up to whole blocks) split over alternating blocks.
    """
    raw = session.inference_session
    feeds_name, outputs = raw.get_inputs()[0].name, [raw.get_outputs()[0].name]
    per_block = max(1, math.ceil(runs / _BLOCKS))
    details: dict[int, dict[str, Any]] = {}
    overhead: dict[int, float] = {}
    for batch_size, x in batches.items():
        paths: dict[str, Callable[[], object]] = {
            "session_run": lambda x=x: session.run(x),
            "raw_run": lambda x=x: raw.run(outputs, {feeds_name: x}),
        }
        durations: dict[str, list[int]] = {name: [] for name in paths}
        for call in paths.values():
            time_calls(call, warmup=warmup, runs=0)  # warm-up only: nothing is timed
        for _ in range(_BLOCKS):
            for name, call in paths.items():
                durations[name] += time_calls(call, warmup=0, runs=per_block)
        stats = {name: summarize_ns(d) for name, d in durations.items()}
        details[batch_size] = {name: s.to_dict() for name, s in stats.items()}
        overhead[batch_size] = overhead_percent(stats["session_run"].p50, stats["raw_run"].p50)
    return details, overhead


def overhead_percent(wrapped_ms: float, raw_ms: float) -> float:
    """How much slower the wrapped call is than the raw one, in percent of the raw latency."""
    return (wrapped_ms - raw_ms) / raw_ms * 100.0 if raw_ms > 0 else float("nan")


def measure_pipeline(
    session: Session, hwc_images: np.ndarray, labels: np.ndarray, *, raw_ips: float, raw_predictions: np.ndarray
) -> dict[str, Any]:
    """images/s of ``Session.predict`` on uint8 HWC images (preprocessing included) beside raw onnxruntime.

    ``raw_ips`` is the throughput of raw onnxruntime on prepared float32 batches of the same size over
    the same images; ``ratio`` = pipeline / raw, so 1.0 means preprocessing and checks cost nothing.
    """
    session.predict(hwc_images[:PIPELINE_BATCH_SIZE], batch_size=PIPELINE_BATCH_SIZE)  # warm-up, not counted
    start = time.perf_counter_ns()
    predictions = session.predict(hwc_images, batch_size=PIPELINE_BATCH_SIZE)
    elapsed_s = (time.perf_counter_ns() - start) / 1e9
    pipeline_ips = len(hwc_images) / elapsed_s
    return {
        "images": int(len(hwc_images)),
        "batch_size": PIPELINE_BATCH_SIZE,
        "seconds": elapsed_s,
        "pipeline_ips": pipeline_ips,
        "raw_ips": raw_ips,
        "ratio": pipeline_ips / raw_ips if raw_ips > 0 else float("nan"),
        "accuracy": float(np.mean(predictions == labels)),
        "top1_agreement_with_raw": float(np.mean(predictions == raw_predictions)),
    }
