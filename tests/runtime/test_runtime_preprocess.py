"""Preprocessing: antialiased bilinear resize against PIL, channel handling, normalization."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from runtime import InputError
from runtime.preprocess import preprocess_images, resize_image, resize_weights, to_channels

def _pil_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR)).astype(np.float64)


@pytest.mark.parametrize(
    ("source", "target"),
    [((37, 53), (32, 32)), ((480, 640), (32, 32)), ((10, 7), (32, 32)), ((100, 33), (17, 64)), ((32, 32), (32, 32))],
)
def test_resize_matches_pil_bilinear(source: tuple[int, int], target: tuple[int, int]) -> None:
    image = np.random.default_rng(sum(source)).integers(0, 256, (*source, 3), dtype=np.uint8)
    ours = resize_image(image, target)
    assert ours.shape == (*target, 3) and ours.dtype == np.float32
    # PIL rounds to uint8 between its two passes; a plain bilinear without antialiasing differs by tens
    assert np.abs(ours - _pil_resize(image, *target)).max() <= 2.0


@pytest.mark.parametrize("name", ["cat.jpg", "zebra.jpg"])
def test_resize_real_photo_matches_pil(name: str, data_dir: Path) -> None:
    with Image.open(data_dir / "images" / name) as photo:  # the real photos beside CIFAR-10 ($TOOLKIT_DATA)
        image = np.asarray(photo.convert("RGB"))
    assert np.abs(resize_image(image, (32, 32)) - _pil_resize(image, 32, 32)).max() <= 2.0


def test_downscale_averages_instead_of_skipping() -> None:
    # A 1-pixel stripe pattern shrunk 4x: antialiasing gives the mean; point sampling would give 0 or 255.
    image = np.zeros((64, 64, 1), dtype=np.uint8)
    image[:, ::2] = 255
    out = resize_image(image, (16, 16))
    assert np.abs(out[2:-2, 2:-2] - 127.5).max() < 1.0


def test_weights_rows_sum_to_one_and_identity_at_same_size() -> None:
    weights = resize_weights(50, 7)
    assert weights.shape == (7, 50)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(resize_weights(9, 9), np.eye(9, dtype=np.float32))


def test_channel_conversions() -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    rgb = to_channels(gray, 3)
    assert rgb.shape == (3, 4, 3) and all(np.array_equal(rgb[:, :, c], gray) for c in range(3))
    rgba = np.dstack([rgb, np.full((3, 4), 9, np.uint8)])
    np.testing.assert_array_equal(to_channels(rgba, 3), rgb)
    assert to_channels(gray[:, :, None], 1).shape == (3, 4, 1)


@pytest.mark.parametrize(
    ("image", "channels", "match"),
    [
        (np.zeros((4, 4, 3), np.float32), 3, r"expected a uint8 image with values 0..255, got dtype float32"),
        (np.zeros((4, 4, 2), np.uint8), 3, r"expected an image of shape \(H, W\).*got \(4, 4, 2\)"),
        (np.zeros((4, 4, 3), np.uint8), 1, r"model expects 1-channel images, got a 3-channel image"),
        ([[1, 2]], 3, r"expected a numpy uint8 image \(H, W, C\), got list"),
    ],
)
def test_bad_images(image: np.ndarray, channels: int, match: str) -> None:
    with pytest.raises(InputError, match=match):
        to_channels(image, channels)


def test_normalization_is_exact_on_a_flat_image() -> None:
    mean, std = (0.5, 0.25, 0.0), (0.5, 0.25, 2.0)
    image = np.full((7, 9, 3), 51, dtype=np.uint8)  # 51 / 255 = 0.2
    batch = preprocess_images([image, image], (3, 4, 4), mean, std)
    assert batch.shape == (2, 3, 4, 4) and batch.dtype == np.float32
    for channel in range(3):
        np.testing.assert_allclose(batch[:, channel], (0.2 - mean[channel]) / std[channel], rtol=1e-5)


def test_channels_end_up_first() -> None:
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    image[:, :, 2] = 255  # blue only
    batch = preprocess_images([image], (3, 4, 4), (0.0,) * 3, (1.0,) * 3)
    assert batch[0, 2].min() == 1.0 and batch[0, :2].max() == 0.0


def test_single_array_or_empty_list_is_refused() -> None:
    with pytest.raises(InputError, match=r"got one array of shape \(8, 8, 3\); wrap a single image in a list"):
        preprocess_images(np.zeros((8, 8, 3), np.uint8), (3, 8, 8), (0,) * 3, (1,) * 3)
    with pytest.raises(InputError, match=r"expected a non-empty list of uint8 HWC images"):
        preprocess_images([], (3, 8, 8), (0,) * 3, (1,) * 3)
