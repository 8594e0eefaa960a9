"""Fixtures for the benchmarks tests: one tiny exported model and CIFAR-shaped random images."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from bench_models import MEAN, STD, BenchRun, Recorder, TinyNet, export_tiny, make_tiny  # on sys.path under pytest

from runtime import Session


@pytest.fixture(scope="session")
def tiny_model() -> TinyNet:
    """The seeded torch model; tests must not change its weights."""
    return make_tiny()


@pytest.fixture(scope="session")
def tiny_onnx(tiny_model: TinyNet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny_model`` exported once per session with the dynamo exporter and toolkit metadata."""
    return export_tiny(tiny_model, tmp_path_factory.mktemp("bench") / "tiny.onnx")


@pytest.fixture(scope="session")
def cifar_like() -> tuple[np.ndarray, np.ndarray]:
    """130 uint8 (3, 32, 32) images and int64 labels: two full batches of 64 and a remainder of 2."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (130, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, 130).astype(np.int64)


@pytest.fixture(scope="session")
def bench_run(tiny_model: TinyNet, tiny_onnx: Path, cifar_like: tuple[np.ndarray, np.ndarray]) -> BenchRun:
    """run_benchmark with small counts, threads=1 while torch is set to 2, every Session creation timed."""
    import benchmarks.ort_runner as ort_runner
    from benchmarks import run_benchmark

    recorder = Recorder(tiny_model)
    run = BenchRun(result=None, forwards=recorder.calls, inference_mode=recorder.inference_mode)  # type: ignore[arg-type]

    class TimedSession(Session):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            run.sessions.append((time.perf_counter_ns(), self))

    images, labels = cifar_like
    run.kwargs = dict(mean=MEAN, std=STD, batch_sizes=(1, 4), runs=3, warmup=2, threads=1, peak_probe_size=128,
                      memory=True, command_line="toolkit bench tiny.onnx")
    previous = torch.get_num_threads()
    torch.set_num_threads(2)  # the benchmark must switch to its own threads=1 and come back to 2
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(ort_runner, "Session", TimedSession)
            run.result = run_benchmark(recorder, tiny_onnx, images, labels, **run.kwargs,
                                       on_progress=lambda *event: run.progress.append(event))
        run.threads_after = torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)
    return run
