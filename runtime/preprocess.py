"""Image preprocessing in numpy: antialiased bilinear resize, scale to 0..1, normalize, to CHW.

The resize matches PIL's ``Image.resize(size, BILINEAR)``: a triangle filter whose support grows with
the downscale factor (so shrinking averages every input pixel instead of skipping some), applied as
two separable weight matrices: ``out[c] = Wy @ img[c] @ Wx.T``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from runtime.errors import InputError

__all__ = ["resize_weights", "resize_image", "to_channels", "check_image_sequence", "preprocess_images"]


def resize_weights(in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) float32 matrix of antialiased bilinear weights; each row sums to 1."""
    scale = in_size / out_size
    # Widening the triangle by the downscale factor is what makes the filter antialiased.
    support = max(scale, 1.0)
    centers = (np.arange(out_size, dtype=np.float64) + 0.5) * scale  # (out,)
    pixels = np.arange(in_size, dtype=np.float64) + 0.5  # (in,) pixel centres
    weights = np.clip(1.0 - np.abs(pixels[None, :] - centers[:, None]) / support, 0.0, None)  # (out, in)
    weights /= weights.sum(axis=1, keepdims=True)
    return weights.astype(np.float32)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an (H, W, C) image to ``size`` = (height, width); returns float32 (h, w, C), same value range."""
    height, width = size
    pixels = image.astype(np.float32)  # (H, W, C)
    if pixels.shape[:2] == (height, width):
        return pixels
    weights_y = resize_weights(pixels.shape[0], height)  # (h, H)
    weights_x = resize_weights(pixels.shape[1], width)  # (w, W)
    rows = np.tensordot(weights_y, pixels, axes=([1], [0]))  # (h, W, C)
    out = np.tensordot(rows, weights_x, axes=([1], [1]))  # (h, C, w)
    return np.ascontiguousarray(out.transpose(0, 2, 1))  # (h, w, C)


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Return a uint8 (H, W, channels) view of a gray (H, W), gray (H, W, 1), RGB or RGBA image.

    RGBA drops alpha; gray is repeated when the model wants 3 channels. Raises ``InputError`` for any
    other dtype or layout rather than guessing.
    """
    if not isinstance(image, np.ndarray):
        raise InputError(f"expected a numpy uint8 image (H, W, C), got {type(image).__name__}; convert with np.asarray")
    if image.dtype != np.uint8:
        raise InputError(
            f"expected a uint8 image with values 0..255, got dtype {image.dtype}; "
            "convert with image.astype(np.uint8), or normalize yourself and call Session.run"
        )
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or 0 in image.shape:
        raise InputError(
            f"expected an image of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {image.shape}; "
            "pass channels-last (HWC) uint8 images"
        )
    if image.shape[2] == 4:
        image = image[:, :, :3]  # RGBA -> RGB: alpha carries no colour
    if image.shape[2] == channels:
        return image
    if image.shape[2] == 1:
        return np.repeat(image, channels, axis=2)
    raise InputError(
        f"model expects {channels}-channel images, got a {image.shape[2]}-channel image of shape {image.shape}; "
        "convert it to grayscale first"
    )


def check_image_sequence(images: Sequence[np.ndarray]) -> None:
    """Raise ``InputError`` unless ``images`` is a non-empty list of images or an (N, H, W, C) array."""
    if isinstance(images, np.ndarray) and images.ndim < 4:
        raise InputError(
            f"expected a list of images or an (N, H, W, C) array, got one array of shape {images.shape}; "
            "wrap a single image in a list: [image]"
        )
    if isinstance(images, (str, bytes)) or not hasattr(images, "__len__") or len(images) == 0:
        raise InputError(f"expected a non-empty list of uint8 HWC images, got {type(images).__name__} {images!r:.60}")


def preprocess_images(
    images: Sequence[np.ndarray],
    input_size: tuple[int, int, int],
    mean: Sequence[float],
    std: Sequence[float],
) -> np.ndarray:
    """uint8 HWC images of any size -> float32 (N, C, H, W): resize, /255, (x - mean) / std."""
    check_image_sequence(images)
    channels, height, width = input_size
    mean_ = np.asarray(mean, dtype=np.float32)  # (C,)
    std_ = np.asarray(std, dtype=np.float32)  # (C,)
    batch = np.empty((len(images), channels, height, width), dtype=np.float32)  # (N, C, H, W)
    for index, image in enumerate(images):
        pixels = resize_image(to_channels(image, channels), (height, width)) / np.float32(255.0)  # (H, W, C)
        batch[index] = ((pixels - mean_) / std_).transpose(2, 0, 1)
    return batch
