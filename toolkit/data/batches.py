"""Split, normalize, augment and batch CIFAR-10 tensors with torch ops (no PIL, no DataLoader)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

from toolkit.errors import ConfigError, DataError

CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
"""Per-channel (R, G, B) mean of the CIFAR-10 training images, pixels scaled to 0..1."""
CIFAR10_STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)
"""Per-channel (R, G, B) standard deviation of the CIFAR-10 training images, pixels scaled to 0..1."""

_CROP_PADDING = 4  # pixels of zero padding around each image before the random crop


def _check_pair(images: torch.Tensor, labels: torch.Tensor) -> None:
    """Raise DataError unless images and labels have the same length."""
    if len(images) != len(labels):
        raise DataError(f"got {len(images)} images but {len(labels)} labels; expected one label per image")


def _check_uint8(batch: torch.Tensor, channels: int) -> None:
    """Raise DataError unless ``batch`` is uint8 (N, channels, H, W)."""
    if batch.dtype != torch.uint8 or batch.ndim != 4 or batch.shape[1] != channels:
        raise DataError(
            f"got a {batch.dtype} tensor of shape {tuple(batch.shape)}, expected uint8 (N, {channels}, H, W) "
            f"images (one channel per mean/std value)"
        )


def split_train_val(
    images: torch.Tensor, labels: torch.Tensor, *, val_fraction: float = 0.1, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split into disjoint (train_images, train_labels, val_images, val_labels) by a seeded permutation.

    ``round(N * val_fraction)`` images go to validation; the same seed always gives the same split.
    """
    _check_pair(images, labels)
    n_val = round(len(images) * val_fraction)
    if not 0 < val_fraction < 1 or not 0 < n_val < len(images):
        raise ConfigError(
            f"val_fraction {val_fraction} of {len(images)} images leaves an empty part; "
            f"expected a fraction in (0, 1) that puts at least one image in each part"
        )
    permutation = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    # Sorted indices keep both parts in dataset order: the split selects, shuffling is the loader's job.
    val_index = permutation[:n_val].sort().values
    train_index = permutation[n_val:].sort().values
    return images[train_index], labels[train_index], images[val_index], labels[val_index]


def normalize(batch_uint8: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Scale uint8 (N, C, H, W) pixels to 0..1, subtract ``mean`` and divide by ``std`` per channel (float32)."""
    _check_uint8(batch_uint8, len(mean))
    mean_t = torch.tensor(mean, dtype=torch.float32, device=batch_uint8.device).view(1, -1, 1, 1)  # (1, C, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=batch_uint8.device).view(1, -1, 1, 1)
    return (batch_uint8.to(torch.float32) / 255.0 - mean_t) / std_t


def _augment(batch: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Random crop (same size, zero padding) and random horizontal flip of a uint8 (N, C, H, W) batch.

    Each image gets its own offset and flip, drawn from ``generator``; one gather does both.
    """
    n, c, h, w = batch.shape
    padded = F.pad(batch, (_CROP_PADDING,) * 4)  # (N, C, H+2p, W+2p), zeros around
    offsets = torch.randint(0, 2 * _CROP_PADDING + 1, (2, n), generator=generator)  # (2, N): dy, dx
    flip = torch.rand(n, generator=generator) < 0.5  # (N,)
    cols = torch.arange(w)
    rows = offsets[0, :, None] + torch.arange(h)  # (N, H)
    cols = offsets[1, :, None] + torch.where(flip[:, None], cols.flip(0), cols)  # (N, W), reversed when flipped
    batch_index = torch.arange(n)[:, None, None, None]
    channel_index = torch.arange(c)[None, :, None, None]
    return padded[batch_index, channel_index, rows[:, None, :, None], cols[:, None, None, :]]  # (N, C, H, W)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of float (N, C, H, W) to (size, size); antialias only when shrinking."""
    if x.shape[-2:] == (size, size):
        return x
    shrinking = size < x.shape[-1] or size < x.shape[-2]
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking)


def iterate_batches(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int,
    shuffle: bool,
    generator: torch.Generator | None = None,
    mean: Sequence[float],
    std: Sequence[float],
    augment: bool = False,
    image_size: int | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (x float32 (B, C, S, S) normalized, y int64 (B,)) batches from uint8 images.

    ``shuffle`` permutes the order and ``augment`` applies random crop + horizontal flip, both drawn
    from ``generator`` (so the same seed gives the same batches); pass ``augment=True`` for training
    data only. ``image_size`` resizes after normalization (bilinear) for models with larger inputs.
    Arguments are checked here, before the first batch is asked for.
    """
    _check_pair(images, labels)
    _check_uint8(images, len(mean))
    if batch_size < 1:
        raise ConfigError(f"batch_size is {batch_size}, expected a positive number of images per batch")
    if image_size is not None and image_size < 1:
        raise ConfigError(f"image_size is {image_size}, expected a positive size in pixels or None")
    order = torch.randperm(len(images), generator=generator) if shuffle else torch.arange(len(images))
    return _batches(images, labels, order, batch_size, generator, mean, std, augment, image_size)


def _batches(
    images: torch.Tensor,
    labels: torch.Tensor,
    order: torch.Tensor,
    batch_size: int,
    generator: torch.Generator | None,
    mean: Sequence[float],
    std: Sequence[float],
    augment: bool,
    image_size: int | None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield the batches for ``iterate_batches`` (a separate generator so argument errors raise at the call)."""
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        batch = images[index]  # (B, C, H, W) uint8
        if augment:
            batch = _augment(batch, generator)
        x = normalize(batch, mean, std)
        if image_size is not None:
            x = _resize(x, image_size)
        yield x, labels[index]
