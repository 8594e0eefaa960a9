"""Checks on the benchmark's arguments and the float32 inputs both engines share.

Images arrive as CIFAR stores them: uint8 (N, C, H, W). Both engines get the same prepared batches:
resize (bilinear, antialiased, so it matches the runtime's own preprocessing when shrinking and is
plain bilinear when growing), scale to 0..1, subtract mean, divide by std.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.errors import BenchmarkInputError
from runtime import Session

__all__ = ["check_arguments", "check_provider", "normalize_size", "prepare_batch", "timing_batch", "iter_chunks"]

PROVIDERS = ("cpu", "cuda")


def check_arguments(
    images: np.ndarray,
    labels: np.ndarray,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    provider: str,
    batch_sizes: Sequence[int],
    runs: int,
    warmup: int,
    time_budget_s: float | None,
    threads: int,
) -> None:
    """Raise ``BenchmarkInputError`` naming the first argument that cannot be benchmarked."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
        got = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        raise BenchmarkInputError(f"expected images as uint8 (N, C, H, W) like CIFAR stores them, got {got}")
    if images.shape[0] == 0 or images.shape[1] not in (1, 3):
        raise BenchmarkInputError(f"expected at least one image with 1 or 3 channels (N, C, H, W), got {images.shape}")
    labels = np.asarray(labels)
    if labels.shape != (images.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise BenchmarkInputError(
            f"expected integer labels of shape ({images.shape[0]},), one per image, got {labels.dtype} {labels.shape}"
        )
    channels = images.shape[1]
    if len(mean) != channels or len(std) != channels or any(s == 0 for s in std):
        raise BenchmarkInputError(
            f"expected {channels} mean and {channels} non-zero std values, got mean={list(mean)} std={list(std)}"
        )
    if provider not in PROVIDERS:
        raise BenchmarkInputError(f"unknown provider {provider!r}: expected one of {', '.join(PROVIDERS)}")
    if not batch_sizes or any(not isinstance(b, int) or b < 1 for b in batch_sizes):
        raise BenchmarkInputError(f"expected batch_sizes as positive ints, got {list(batch_sizes)}; e.g. (1, 8, 64)")
    if runs < 1 or warmup < 0:
        raise BenchmarkInputError(f"expected runs >= 1 and warmup >= 0, got runs={runs} warmup={warmup}")
    if time_budget_s is not None and time_budget_s <= 0:
        raise BenchmarkInputError(f"expected time_budget_s > 0 seconds or None, got {time_budget_s}")
    if threads < 1:
        raise BenchmarkInputError(f"expected threads >= 1, got {threads}; omit it to use os.cpu_count()")


def check_provider(onnx_path: str | os.PathLike[str], provider: str) -> None:
    """For ``provider="cuda"``: prove onnxruntime runs ``onnx_path`` on CUDA, then that torch sees a GPU.

    onnxruntime comes first so the user learns the runtime's own diagnosis (``runtime.ProviderError``:
    CUDA is not active, the library that failed to load when known, the providers that are) before
    any torch work. The probe session is dropped at once, so no onnxruntime session outlives the check.
    """
    if provider != "cuda":
        return
    Session(onnx_path, provider="cuda")  # raises ProviderError unless CUDAExecutionProvider is really active
    if not torch.cuda.is_available():
        raise BenchmarkInputError(
            "onnxruntime runs on CUDA but torch sees no CUDA device, so the torch baseline cannot run there; "
            "install a CUDA build of torch (https://pytorch.org/get-started/locally/) or use provider='cpu'"
        )


def normalize_size(image_size: int | Sequence[int] | None, default: tuple[int, int]) -> tuple[int, int]:
    """``image_size`` as (H, W): an int means square, None means ``default``."""
    if image_size is None:
        return default
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or any(not isinstance(s, int) or s < 1 for s in size):
        raise BenchmarkInputError(f"expected image_size as a positive int or (H, W), got {image_size!r}")
    return (int(size[0]), int(size[1]))


def prepare_batch(
    images: np.ndarray, mean: Sequence[float], std: Sequence[float], size: tuple[int, int]
) -> np.ndarray:
    """uint8 (N, C, H, W) -> normalized float32 (N, C, *size), C-contiguous."""
    pixels = torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32)  # (N, C, H, W) 0..255
    if tuple(pixels.shape[2:]) != size:
        # Resize before normalizing: both are per-channel linear, so the order matches the runtime's.
        pixels = F.interpolate(pixels, size=size, mode="bilinear", align_corners=False, antialias=True)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return np.ascontiguousarray(((pixels / 255.0 - mean_t) / std_t).numpy())


def timing_batch(
    images: np.ndarray, batch_size: int, mean: Sequence[float], std: Sequence[float], size: tuple[int, int]
) -> np.ndarray:
    """The first ``batch_size`` images, repeated when fewer are given, prepared once for both engines."""
    index = np.arange(batch_size) % images.shape[0]
    return prepare_batch(images[index], mean, std, size)


def iter_chunks(
    images: np.ndarray, batch_size: int, mean: Sequence[float], std: Sequence[float], size: tuple[int, int]
) -> Iterator[np.ndarray]:
    """Prepared batches over every image, in order; prepared lazily so large resizes never fill memory."""
    for start in range(0, images.shape[0], batch_size):
        yield prepare_batch(images[start : start + batch_size], mean, std, size)
