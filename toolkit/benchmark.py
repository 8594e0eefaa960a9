"""`toolkit bench` as a library call: checkpoint + ONNX file + real test images -> a benchmark record."""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from toolkit.checkpoint import load_checkpoint
from toolkit.data import load_cifar10, locate_cifar10
from toolkit.errors import ToolkitError

logger = logging.getLogger(__name__)

# The photo the edge memory scenario classifies by default, relative to the folder holding CIFAR-10
# (../shared/data/images/cat.jpg for the shared data).
DEFAULT_PHOTO = Path("images") / "cat.jpg"


def check_output_path(path: str | os.PathLike, option: str) -> None:
    """Raise ToolkitError unless ``path`` can be written: its folder exists, is a folder and is writable.

    Called before a benchmark that may run for minutes, so a typo in ``--json``/``--plot`` fails at once.
    """
    target = Path(path)
    folder = target.parent
    if target.is_dir():
        raise ToolkitError(f"{option} {target} is a folder; expected a file path such as {target / 'bench.json'}")
    if not folder.exists():
        raise ToolkitError(f"{option} {target}: folder {folder} does not exist; create it (mkdir -p {folder}) "
                           "or choose another path")
    if not folder.is_dir():
        raise ToolkitError(f"{option} {target}: {folder} is not a folder; choose another path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ToolkitError(f"{option} {target}: folder {folder} is not writable; choose another path")


def _edge_photo(image: str | os.PathLike | None, data: str | os.PathLike | None) -> Path | None:
    """The photo for the edge memory scenario: ``image``, else the data folder's default, else None."""
    if image is not None:
        return Path(image)
    default = locate_cifar10(data, download=False).parent / DEFAULT_PHOTO
    if default.is_file():
        return default
    logger.warning("no photo at %s: the edge memory scenario classifies a synthetic image; pass --image", default)
    return None


def bench_checkpoint(checkpoint_path: str | os.PathLike, onnx_path: str | os.PathLike, *,
                     provider: str = "cpu", data: str | os.PathLike | None = None,
                     batch_sizes: Sequence[int] = (1, 8, 64, 256), runs: int = 50, warmup: int = 10,
                     time_budget_s: float | None = None, threads: int | None = None,
                     images: int | None = None, memory: bool = True, image: str | os.PathLike | None = None,
                     on_estimate: Callable[[float], None] | None = None,
                     on_progress: Callable[[str, int, int], None] | None = None) -> Any:
    """Benchmark the checkpoint's torch model against the ONNX file on the real test set.

    ``image`` is the photo the edge memory scenario classifies (default: ``images/cat.jpg`` beside the
    CIFAR-10 data; a synthetic image when that is missing too, and the record says so).
    """
    from benchmarks import check_provider, estimate_seconds, run_benchmark, torch_probe_command

    if image is not None and not Path(image).is_file():
        raise ToolkitError(f"image {image} does not exist: expected a JPEG/PNG photo for the edge memory scenario")
    # Fails with the runtime's own explanation (which library did not load, which providers are
    # active) before the checkpoint, the data or any torch work.
    check_provider(onnx_path, provider)
    ckpt = load_checkpoint(checkpoint_path)
    cifar = load_cifar10(data)
    count = images or len(cifar.test_labels)
    test_x = cifar.test_images[:count].numpy()  # uint8 (N, 3, 32, 32)
    test_y = cifar.test_labels[:count].numpy()
    photo = _edge_photo(image, data) if memory else None
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
                         memory=memory, memory_probe_cmd=probe if memory else None, edge_image=photo,
                         on_progress=on_progress, command_line=" ".join(["toolkit", *sys.argv[1:]]))
