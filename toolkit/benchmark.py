"""`toolkit bench` as a library call: checkpoint + ONNX file + real test images -> a benchmark record."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from toolkit.checkpoint import load_checkpoint
from toolkit.data import load_cifar10


def bench_checkpoint(checkpoint_path: str | os.PathLike, onnx_path: str | os.PathLike, *,
                     provider: str = "cpu", data: str | os.PathLike | None = None,
                     batch_sizes: Sequence[int] = (1, 8, 64, 256), runs: int = 50, warmup: int = 10,
                     time_budget_s: float | None = None, threads: int | None = None,
                     images: int | None = None, memory: bool = True,
                     on_estimate: Callable[[float], None] | None = None,
                     on_progress: Callable[[str, int, int], None] | None = None) -> Any:
    """Benchmark the checkpoint's torch model against the ONNX file on the real test set."""
    from benchmarks import estimate_seconds, run_benchmark, torch_probe_command
    from runtime import Session

    if provider == "cuda":
        # Fails with the runtime's own explanation (which library did not load, which providers are
        # active) before any torch timing starts.
        Session(onnx_path, provider="cuda")
    ckpt = load_checkpoint(checkpoint_path)
    cifar = load_cifar10(data)
    count = images or len(cifar.test_labels)
    test_x = cifar.test_images[:count].numpy()  # uint8 (N, 3, 32, 32)
    test_y = cifar.test_labels[:count].numpy()
    if on_estimate:
        on_estimate(estimate_seconds(ckpt.model, input_size=ckpt.input_size, n_images=count,
                                     batch_sizes=batch_sizes, runs=runs, warmup=warmup,
                                     time_budget_s=time_budget_s, threads=threads, memory=memory,
                                     provider=provider))
    probe = torch_probe_command("toolkit.checkpoint:load_model", Path(checkpoint_path).resolve(),
                                ckpt.input_size, threads=threads or os.cpu_count() or 1, provider=provider)
    return run_benchmark(ckpt.model, onnx_path, test_x, test_y, mean=ckpt.mean, std=ckpt.std,
                         provider=provider, batch_sizes=batch_sizes, runs=runs, warmup=warmup,
                         time_budget_s=time_budget_s, threads=threads, image_size=ckpt.input_size[1:],
                         memory=memory, memory_probe_cmd=probe if memory else None,
                         on_progress=on_progress, command_line=" ".join(["toolkit", *sys.argv[1:]]))
