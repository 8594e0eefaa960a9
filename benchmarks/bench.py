"""``run_benchmark``: torch against onnxruntime on the same prepared inputs, phase by phase.

Order, and why:
1. arguments (for CUDA: first whether onnxruntime really runs on CUDA, then whether torch sees a GPU),
   model file facts, MAC count (onnx only: no onnxruntime session is kept);
2. the fp32 matmul peak probe with the benchmark's thread count;
3. the torch phase (all torch timings, then torch logits over every image);
4. the onnxruntime phase (session creation, first run, all timings, logits, runtime overhead,
   whole pipeline) -- created only after torch is done, so its threads cannot inflate torch's numbers;
5. peak memory of each scenario (torch, the onnxruntime workload, the runtime at the edge classifying
   one photo), each in a child process of its own.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from benchmarks.environment import collect_environment
from benchmarks.errors import BenchmarkInputError, MemoryProbeError
from benchmarks.flops import count_macs
from benchmarks.inputs import check_arguments, check_provider, iter_chunks, normalize_size, prepare_batch, timing_batch
from benchmarks.memory import SCENARIOS, edge_probe_command, onnx_probe_command, probe_memory
from benchmarks.ort_runner import ENGINE_LABELS, run_ort_phase
from benchmarks.overhead import OVERHEAD_BATCH_SIZES, PIPELINE_BATCH_SIZE, measure_overhead, measure_pipeline
from benchmarks.peak import measure_peak
from benchmarks.record import BenchResult
from benchmarks.torch_runner import run_torch_phase
from runtime import ModelMetadata, load_metadata

__all__ = ["run_benchmark", "ProgressCallback"]

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int], None]


class _Progress:
    """Counts steps and reports each as it starts: ``on_progress(message, done, total)``."""

    def __init__(self, callback: ProgressCallback | None, total: int) -> None:
        self.callback, self.total, self.done = callback, total, 0

    def step(self, message: str) -> None:
        """Report that the step ``message`` starts now."""
        logger.info("benchmark step %d/%d: %s", self.done + 1, self.total, message)
        if self.callback is not None:
            self.callback(message, self.done, self.total)
        self.done += 1

    def finish(self) -> None:
        """Report that every step is done."""
        if self.callback is not None:
            self.callback("done", self.total, self.total)


def run_benchmark(
    model: nn.Module,
    onnx_path: str | os.PathLike[str],
    images: np.ndarray,
    labels: np.ndarray,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    provider: str = "cpu",
    batch_sizes: Sequence[int] = (1, 8, 64, 256),
    runs: int = 50,
    warmup: int = 10,
    time_budget_s: float | None = None,
    threads: int | None = None,
    image_size: int | Sequence[int] | None = None,
    memory: bool = True,
    memory_probe_cmd: list[str] | None = None,
    on_progress: ProgressCallback | None = None,
    command_line: str = "",
    graph_optimization: str = "all",
    peak_probe_size: int = 2048,
    edge_image: str | os.PathLike[str] | None = None,
) -> BenchResult:
    """Benchmark ``model`` (torch) against ``onnx_path`` (onnxruntime via ``runtime.Session``).

    ``images`` are uint8 (N, C, H, W) with integer ``labels`` (N,); both engines get the same float32
    batches, normalized with ``mean``/``std`` and resized to ``image_size`` (default: the model's
    ``toolkit.input_size``). Each (engine, batch size) gets ``warmup`` untimed runs, then ``runs`` timed
    runs, or as many as fit ``time_budget_s`` seconds. ``threads`` (default ``os.cpu_count()``) is the
    intra-op thread count of both engines; inter-op threads are 1 and onnxruntime never spins.
    The runtime-overhead comparison uses ``runs``, raised to ``overhead.OVERHEAD_MIN_RUNS`` (budget or not)
    and the whole-pipeline comparison runs once over every image. ``model`` is put in eval mode
    (on CUDA a copy is moved to the device). ``memory_probe_cmd`` is the argv of a torch memory child
    (``benchmarks.memory.torch_probe_command`` builds it); without it torch's peak memory is recorded
    as null. ``--threads`` is appended to it when missing. ``peak_probe_size`` is n of the n x n matmul.
    ``edge_image`` is the photo the edge memory scenario classifies (None: a synthetic uint8 image).
    Raises ``BenchmarkInputError`` for unusable arguments, runtime's ``ProviderError`` when CUDA is asked
    but onnxruntime cannot run on it, and runtime's errors for an unreadable model.
    """
    threads = threads or os.cpu_count() or 1
    check_arguments(images, labels, mean, std, provider=provider, batch_sizes=batch_sizes, runs=runs,
                    warmup=warmup, time_budget_s=time_budget_s, threads=threads)
    path = Path(onnx_path)
    if not path.is_file():
        raise BenchmarkInputError(f"ONNX file {path} does not exist: expected a file written by 'toolkit export'")
    check_provider(path, provider)
    metadata = load_metadata(path)
    size = _input_hw(image_size, metadata, images)
    _warn_on_normalization(metadata, mean, std)
    labels = np.asarray(labels, dtype=np.int64)
    batch_sizes = list(dict.fromkeys(batch_sizes))  # (1, 1) would otherwise time batch 1 twice
    engines = 2 if provider == "cuda" else 1  # on CUDA: torch events + wall clock; onnx host copies + I/O binding
    progress = _Progress(on_progress, 6 + len(batch_sizes) * 2 * engines + (len(SCENARIOS) if memory else 0))
    proto = onnx.load(os.fspath(path), load_external_data=False)
    macs = count_macs(proto)
    previous_threads = torch.get_num_threads()
    try:
        result = _measure(model, path, images, labels, mean=mean, std=std, size=size, provider=provider,
                          batch_sizes=batch_sizes, runs=runs, warmup=warmup, time_budget_s=time_budget_s,
                          threads=threads, graph_optimization=graph_optimization, peak_probe_size=peak_probe_size,
                          progress=progress)
    finally:
        torch.set_num_threads(previous_threads)  # the caller's process should not keep our thread count
    memory_mb, memory_details = _measure_memory(path, provider, threads, memory, memory_probe_cmd, edge_image,
                                                progress)
    progress.finish()
    return _assemble(result, proto=proto, metadata=metadata, path=path, macs=macs, memory_mb=memory_mb,
                     memory_details=memory_details, command_line=command_line, mean=mean, std=std, size=size,
                     provider=provider, threads=threads)


def _input_hw(image_size: int | Sequence[int] | None, metadata: ModelMetadata, images: np.ndarray) -> tuple[int, int]:
    """(H, W) to feed the model: the explicit size, else the model's recorded input size, else the images'."""
    own = (int(images.shape[2]), int(images.shape[3]))
    default = (metadata.input_size[1], metadata.input_size[2]) if metadata.input_size else own
    if metadata.input_size and metadata.input_size[0] != images.shape[1]:
        raise BenchmarkInputError(
            f"model expects {metadata.input_size[0]}-channel input, images have {images.shape[1]} channels"
        )
    size = normalize_size(image_size, default)
    if size != own:
        logger.info("resizing %dx%d images to %dx%d (bilinear) for both engines", *own, *size)
    return size


def _warn_on_normalization(metadata: ModelMetadata, mean: Sequence[float], std: Sequence[float]) -> None:
    """The pipeline (``Session.predict``) normalizes with the metadata, the engines with ``mean``/``std``."""
    if not np.allclose(metadata.mean, mean, atol=1e-4) or not np.allclose(metadata.std, std, atol=1e-4):
        logger.warning("mean/std given (%s, %s) differ from the model's metadata (%s, %s): pipeline accuracy "
                       "will differ from onnx accuracy", list(mean), list(std), list(metadata.mean),
                       list(metadata.std))


def _measure(model: nn.Module, path: Path, images: np.ndarray, labels: np.ndarray, *, mean: Sequence[float],
             std: Sequence[float], size: tuple[int, int], provider: str, batch_sizes: list[int], runs: int,
             warmup: int, time_budget_s: float | None, threads: int, graph_optimization: str,
             peak_probe_size: int, progress: _Progress) -> dict[str, Any]:
    """Steps 2-4 of the module docstring; returns the raw measurements."""
    device = "cuda" if provider == "cuda" else "cpu"
    batches = {b: timing_batch(images, b, mean, std, size) for b in batch_sizes}  # (b, C, H, W) each
    chunks = lambda: iter_chunks(images, PIPELINE_BATCH_SIZE, mean, std, size)  # noqa: E731 - re-iterable
    progress.step("fp32 peak probe")
    peak = measure_peak(threads, size=peak_probe_size, device=device)
    torch_phase = run_torch_phase(model, batches, chunks(), device=device, threads=threads, warmup=warmup,
                                  runs=runs, time_budget_s=time_budget_s, step=progress.step)
    ort_phase = run_ort_phase(os.fspath(path), batches, chunks(), provider=provider, threads=threads,
                              graph_optimization=graph_optimization, warmup=warmup, runs=runs,
                              time_budget_s=time_budget_s, step=progress.step)
    progress.step("runtime overhead")
    overhead_batches = {b: batches[b] if b in batches else timing_batch(images, b, mean, std, size)
                        for b in OVERHEAD_BATCH_SIZES}
    overhead_details, overhead = measure_overhead(ort_phase.session, overhead_batches, warmup=warmup, runs=runs)
    progress.step("whole pipeline")
    hwc = np.ascontiguousarray(images.transpose(0, 2, 3, 1))  # (N, H, W, C) as an application holds images
    pipeline = measure_pipeline(ort_phase.session, hwc, labels, warmup=warmup,
                                prepare=lambda start, stop: prepare_batch(images[start:stop], mean, std, size))
    return {"peak": peak, "torch": torch_phase, "ort": ort_phase, "overhead": overhead,
            "overhead_details": overhead_details, "pipeline": pipeline, "labels": labels, "runs": runs,
            "warmup": warmup, "time_budget_s": time_budget_s, "batch_sizes": batch_sizes,
            "timer": "torch: CUDA events; torch_wall, onnx, onnx_iobinding: time.perf_counter_ns around the "
                     "call until the device is synchronized" if device == "cuda" else "time.perf_counter_ns"}


def _measure_memory(path: Path, provider: str, threads: int, enabled: bool, torch_cmd: list[str] | None,
                    edge_image: str | os.PathLike[str] | None,
                    progress: _Progress) -> tuple[dict[str, float | None], dict[str, Any]]:
    """Peak RSS (MB) of each scenario in its own child; a failed probe is recorded, not fatal."""
    memory_mb: dict[str, float | None] = dict.fromkeys(SCENARIOS)
    details: dict[str, Any] = {}
    if not enabled:
        return memory_mb, {"skipped": "memory=False"}
    commands: dict[str, list[str] | None] = {
        "torch": None if torch_cmd is None else
        (list(torch_cmd) if "--threads" in torch_cmd else [*torch_cmd, "--threads", str(threads)]),
        "onnx": onnx_probe_command(path, threads=threads, provider=provider),
        "runtime_edge": edge_probe_command(path, image=edge_image, threads=threads, provider=provider),
    }
    for scenario, command in commands.items():
        progress.step(f"{scenario} peak memory")
        if command is None:
            details[scenario] = {"error": "no memory_probe_cmd given for torch"}
            continue
        try:
            details[scenario] = probe_memory(command)
            memory_mb[scenario] = float(details[scenario]["peak_rss_mb"])
        except (MemoryProbeError, KeyError, TypeError, ValueError) as exc:
            logger.warning("%s memory probe failed: %s", scenario, exc)
            details[scenario] = {"error": str(exc), "command": command}
    return memory_mb, details


def _accuracy(torch_logits: np.ndarray, onnx_logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    torch_top1, onnx_top1 = np.argmax(torch_logits, axis=1), np.argmax(onnx_logits, axis=1)
    return {
        "torch": float(np.mean(torch_top1 == labels)),
        "onnx": float(np.mean(onnx_top1 == labels)),
        "top1_agreement": float(np.mean(torch_top1 == onnx_top1)),
        "max_abs_logit_diff": float(np.max(np.abs(torch_logits.astype(np.float64) - onnx_logits))),
        "images": int(labels.shape[0]),
    }


def _model_facts(path: Path, proto: onnx.ModelProto, metadata: ModelMetadata) -> dict[str, Any]:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    return {"path": str(path.resolve()), "sha256": digest.hexdigest(), "bytes": path.stat().st_size,
            "opset": opset, "export": metadata.export, "name": metadata.model,
            "input_size": list(metadata.input_size) if metadata.input_size else None}


def _assemble(m: dict[str, Any], *, proto: onnx.ModelProto, metadata: ModelMetadata, path: Path, macs: Any,
              memory_mb: dict[str, float | None], memory_details: dict[str, Any], command_line: str,
              mean: Sequence[float], std: Sequence[float], size: tuple[int, int], provider: str,
              threads: int) -> BenchResult:
    torch_phase, ort_phase = m["torch"], m["ort"]
    environment = collect_environment()
    if provider == "cuda":
        environment["gpu"] = torch.cuda.get_device_name(0)
    latency = {**torch_phase.latency, **ort_phase.latency}
    return BenchResult(
        provider_requested=provider, providers_active=list(ort_phase.session.providers_active),
        accuracy=_accuracy(torch_phase.logits, ort_phase.logits, m["labels"]),
        latency=latency,
        first_run_ms={"torch": torch_phase.first_run_ms, "onnx": ort_phase.first_run_ms},
        session_create_ms=ort_phase.session_create_ms, memory_mb=memory_mb, macs_per_image=macs.total,
        peak_probe=m["peak"], runtime_overhead_pct=m["overhead"], pipeline=m["pipeline"], threads=threads,
        settings={"torch": torch_phase.settings, "onnx": ort_phase.settings, "spin_wait": False,
                  "graph_optimization": ort_phase.settings.get("graph_optimization"),
                  "engines": {e: ENGINE_LABELS[e] for e in latency}},
        environment=environment, model=_model_facts(path, proto, metadata), command_line=command_line,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        extra={
            "protocol": {"warmup": m["warmup"], "runs": m["runs"], "time_budget_s": m["time_budget_s"],
                         "batch_sizes": m["batch_sizes"], "input_hw": list(size), "timer": m["timer"],
                         "mean": list(mean), "std": list(std), "metadata_mean": list(metadata.mean),
                         "metadata_std": list(metadata.std),
                         "phases": ["peak_probe", "torch", "onnxruntime", "memory"]},
            "runtime_overhead": {str(b): v for b, v in m["overhead_details"].items()},
            "memory_scenarios": dict(SCENARIOS),
            "memory_details": memory_details,
            "macs_detail": {"per_node": macs.per_node, "skipped": list(macs.skipped)},
        },
    )
