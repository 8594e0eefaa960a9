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

__all__ = ["OrtPhase", "ENGINE_LABELS", "create_session", "applied_options", "bind_on_device", "run_ort_phase"]

ENGINE_LABELS = {
    "torch": "torch model(x) under inference_mode; CPU: host wall clock; CUDA: input on the device, "
             "device time between two CUDA events",
    "torch_wall": "torch on CUDA, input on the device: host wall clock of model(x) then torch.cuda.synchronize() "
                  "(compare with onnx_iobinding)",
    "onnx": "onnxruntime InferenceSession.run, numpy in and out, host wall clock (on CUDA this includes the "
            "host->device input and device->host output copies)",
    "onnx_iobinding": "onnxruntime run_with_iobinding on CUDA, input and output bound on the device (no copies "
                      "in the timed call), host wall clock until the outputs are synchronized",
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
    """Input copied to the GPU once and output preallocated there: the timed call moves no data.

    onnxruntime's Run synchronizes its CUDA stream before returning; ``synchronize_outputs`` makes the
    wait explicit, so the host clock stops only once the device has finished.
    """
    raw = session.inference_session
    binding = bind_on_device(raw, x, "cuda")

    def call() -> None:
        raw.run_with_iobinding(binding)
        binding.synchronize_outputs()

    return call


def bind_on_device(raw: ort.InferenceSession, x: np.ndarray, device: str) -> ort.IOBinding:
    """An I/O binding with ``x`` copied to ``device`` ("cuda", or "cpu" for tests) and the logits output
    bound there too (preallocated when the class count is fixed)."""
    binding = raw.io_binding()
    binding.bind_ortvalue_input(raw.get_inputs()[0].name, ort.OrtValue.ortvalue_from_numpy(x, device, 0))
    num_classes = raw.get_outputs()[0].shape[-1]
    if isinstance(num_classes, int):
        logits = ort.OrtValue.ortvalue_from_shape_and_type((x.shape[0], num_classes), np.float32, device, 0)
        binding.bind_ortvalue_output(raw.get_outputs()[0].name, logits)  # (B, K) on the device
    else:  # symbolic class dim: let onnxruntime allocate the output on the device
        binding.bind_output(raw.get_outputs()[0].name, device, 0)
    binding.synchronize_inputs()
    return binding


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
    phase.logits = np.concatenate([_raw_call(session, chunk)()[0] for chunk in chunks])  # (N, K)
    return phase
