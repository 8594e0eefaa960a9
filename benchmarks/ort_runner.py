"""The onnxruntime side: session creation, first run, timed runs per batch size, logits over every image.

Latency is timed on the raw ``InferenceSession.run`` (the engine alone, as onnxruntime_perf_test does);
what our ``runtime.Session`` adds on top is measured separately in ``benchmarks.overhead``. On CUDA the
host-copy path (numpy in, numpy out) is timed as ``onnx`` and, separately, the device-resident I/O
binding path as ``onnx_iobinding``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort

from benchmarks.stats import LatencyStats, summarize_ns
from benchmarks.timing import time_calls, time_once_ms
from runtime import Session

__all__ = ["OrtPhase", "ENGINE_LABELS", "create_session", "applied_options", "run_ort_phase"]

ENGINE_LABELS = {
    "torch": "torch model(x) under inference_mode; CUDA: inputs on device, timed with CUDA events",
    "onnx": "onnxruntime InferenceSession.run, numpy in and out (on CUDA this includes host<->device copies)",
    "onnx_iobinding": "onnxruntime run_with_iobinding, input and output resident on the CUDA device",
}
_SPIN_KEYS = ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning")


@dataclass
class OrtPhase:
    """What the onnxruntime phase measured; latency keyed by engine label, then batch size."""

    session: Session
    session_create_ms: float
    first_run_ms: float = 0.0
    latency: dict[str, dict[int, LatencyStats]] = field(default_factory=dict)
    logits: np.ndarray | None = None  # (N, K) over every image
    raw_ips: float = 0.0  # throughput of the logits pass (prepared float32 batches, inference calls only)
    settings: dict[str, Any] = field(default_factory=dict)


def create_session(onnx_path: str, provider: str, threads: int, graph_optimization: str) -> tuple[Session, float]:
    """A ``runtime.Session`` with fixed threads and spinning off, and its creation time in ms."""
    start = time.perf_counter_ns()
    session = Session(
        onnx_path, provider, intra_op_threads=threads, inter_op_threads=1, spin_wait=False,
        graph_optimization=graph_optimization,
    )
    return session, (time.perf_counter_ns() - start) / 1e6


def applied_options(session: Session) -> dict[str, Any]:
    """Settings as onnxruntime itself reports them, beside what ``runtime.Session`` says it applied."""
    options = session.inference_session.get_session_options()
    return {
        **session.settings,
        "ort_intra_op_num_threads": options.intra_op_num_threads,
        "ort_inter_op_num_threads": options.inter_op_num_threads,
        "ort_graph_optimization_level": str(options.graph_optimization_level).rsplit(".", 1)[-1],
        "ort_execution_mode": str(options.execution_mode).rsplit(".", 1)[-1],
        **{f"ort_{key}": _config_entry(options, key) for key in _SPIN_KEYS},
    }


def _config_entry(options: ort.SessionOptions, key: str) -> str | None:
    """A session config entry, or None when unset (for spinning that means onnxruntime's default: on)."""
    try:
        return options.get_session_config_entry(key)
    except RuntimeError:  # onnxruntime raises for a key that was never added
        return None


def _raw_call(session: Session, x: np.ndarray) -> Callable[[], list[np.ndarray]]:
    raw = session.inference_session
    feeds = {raw.get_inputs()[0].name: x}
    outputs = [raw.get_outputs()[0].name]
    return lambda: raw.run(outputs, feeds)


def _iobinding_call(session: Session, x: np.ndarray) -> Callable[[], object]:
    """Input copied to the GPU once, output left there: the timed call moves no data over PCIe."""
    raw = session.inference_session
    binding = raw.io_binding()
    binding.bind_ortvalue_input(raw.get_inputs()[0].name, ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0))
    binding.bind_output(raw.get_outputs()[0].name, "cuda", 0)
    return lambda: raw.run_with_iobinding(binding)


def run_ort_phase(
    onnx_path: str,
    batches: dict[int, np.ndarray],
    chunks: Iterable[np.ndarray],
    *,
    provider: str,
    threads: int,
    graph_optimization: str,
    warmup: int,
    runs: int,
    time_budget_s: float | None,
    step: Callable[[str], None],
) -> OrtPhase:
    """Create the session, time the first run and every batch size, then compute logits over ``chunks``."""
    step("onnxruntime session")
    session, create_ms = create_session(onnx_path, provider, threads, graph_optimization)
    phase = OrtPhase(session=session, session_create_ms=create_ms, settings=applied_options(session))
    phase.first_run_ms = time_once_ms(_raw_call(session, batches[min(batches)]))
    makers: dict[str, Callable[[Session, np.ndarray], Callable[[], object]]] = {"onnx": _raw_call}
    if provider == "cuda":
        makers["onnx_iobinding"] = _iobinding_call
    for engine, make in makers.items():
        phase.latency[engine] = {}
        for batch_size, x in batches.items():
            step(f"{engine} batch {batch_size}")
            durations = time_calls(make(session, x), warmup=warmup, runs=runs, time_budget_s=time_budget_s)
            phase.latency[engine][batch_size] = summarize_ns(durations)
    step("onnx accuracy")
    phase.logits, phase.raw_ips = _logits_pass(session, chunks)
    return phase


def _logits_pass(session: Session, chunks: Iterable[np.ndarray]) -> tuple[np.ndarray, float]:
    """Logits over every chunk and the images/s of the inference calls alone (preparation excluded)."""
    outputs, images, spent_ns = [], 0, 0
    for chunk in chunks:
        call = _raw_call(session, chunk)
        start = time.perf_counter_ns()
        logits = call()[0]
        spent_ns += time.perf_counter_ns() - start
        outputs.append(logits)
        images += chunk.shape[0]
    return np.concatenate(outputs), images / (spent_ns / 1e9) if spent_ns else 0.0
