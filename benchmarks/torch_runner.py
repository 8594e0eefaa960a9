"""The PyTorch baseline: thread settings, timed runs per batch size, logits over every image.

Runs in its own phase before any onnxruntime session exists in the process, so onnxruntime's thread
pool can neither spin against nor share cores with torch while torch is being timed. On CUDA each batch
size is timed twice, labelled: ``torch`` with CUDA events (device time) and ``torch_wall`` with the host
clock around the call and a synchronize (what onnxruntime's timings measure).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks.stats import LatencyStats, summarize_ns
from benchmarks.timing import Measure, time_calls, time_once_ms, wall_ns

__all__ = ["TorchPhase", "apply_torch_threads", "cuda_event_ns", "cuda_wall_ns", "run_torch_phase"]

logger = logging.getLogger(__name__)


@dataclass
class TorchPhase:
    """What the torch phase measured; latency keyed by engine label ("torch", on CUDA also "torch_wall"),
    then batch size."""

    latency: dict[str, dict[int, LatencyStats]] = field(default_factory=dict)
    first_run_ms: float = 0.0
    logits: np.ndarray | None = None  # (N, K) over every image
    settings: dict[str, Any] = field(default_factory=dict)


def apply_torch_threads(threads: int) -> dict[str, Any]:
    """Set torch's intra-op threads to ``threads`` and inter-op threads to 1 (like onnxruntime's).

    ``set_num_interop_threads`` only works before the first inter-op parallel work in the process;
    when that moment has passed the value in force is recorded as it is.
    """
    torch.set_num_threads(threads)
    interop_settable = True
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        interop_settable = False
        logger.info("torch inter-op threads already fixed at %d in this process", torch.get_num_interop_threads())
    return {
        "intra_op_threads": torch.get_num_threads(),
        "inter_op_threads": torch.get_num_interop_threads(),
        "inter_op_threads_settable": interop_settable,
        "inference_mode": True,
    }


def cuda_event_ns(call: Callable[[], object]) -> int:
    """Device time of one call measured with CUDA events (the host returns before the GPU finishes)."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    call()
    end.record()
    torch.cuda.synchronize()
    return int(start.elapsed_time(end) * 1e6)


def cuda_wall_ns(call: Callable[[], object]) -> int:
    """Host wall-clock time of one call until the GPU has finished it (queued work drained first)."""
    torch.cuda.synchronize()  # warm-up calls are not synchronized: do not charge their tail to this call
    start = time.perf_counter_ns()
    call()
    torch.cuda.synchronize()
    return time.perf_counter_ns() - start


def run_torch_phase(
    model: nn.Module,
    batches: dict[int, np.ndarray],
    chunks: Iterable[np.ndarray],
    *,
    device: str,
    threads: int,
    warmup: int,
    runs: int,
    time_budget_s: float | None,
    step: Callable[[str], None],
) -> TorchPhase:
    """Time ``model`` on each prepared batch, then compute logits over ``chunks`` (every image)."""
    phase = TorchPhase(settings=apply_torch_threads(threads) | {"device": device})
    model = model.eval() if device == "cpu" else copy.deepcopy(model).eval().to(device)  # caller's stays on CPU
    measures: dict[str, Measure] = {"torch": cuda_event_ns, "torch_wall": cuda_wall_ns} if device == "cuda" \
        else {"torch": wall_ns}
    with torch.inference_mode():
        tensors = {b: torch.from_numpy(x).to(device) for b, x in batches.items()}  # (b, C, H, W) each
        first = tensors[min(tensors)]
        phase.first_run_ms = time_once_ms(lambda: model(first), measures["torch"])
        for engine, measure in measures.items():
            phase.latency[engine] = {}
            for batch_size, x in tensors.items():
                step(f"{engine} batch {batch_size}")
                durations = time_calls(lambda: model(x), warmup=warmup, runs=runs, time_budget_s=time_budget_s,
                                       measure=measure)
                phase.latency[engine][batch_size] = summarize_ns(durations)
        step("torch accuracy")
        outputs = [model(torch.from_numpy(chunk).to(device)).float().cpu().numpy() for chunk in chunks]
    phase.logits = np.concatenate(outputs)  # (N, K)
    return phase
