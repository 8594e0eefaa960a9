"""Checks on a batch before onnxruntime runs it: type, dtype, rank, layout, channels, size.

Each failure is one line naming the expected and the given shape or dtype and the fix; nothing is
reshaped or converted silently, because a silently transposed batch still runs and gives wrong answers.
"""

from __future__ import annotations

import numpy as np

from runtime.errors import InputError

__all__ = ["check_batch", "looks_unnormalized"]

ExpectedCHW = tuple[int | None, int | None, int | None]


def check_batch(batch: object, expected: ExpectedCHW) -> np.ndarray:
    """Raise ``InputError`` unless ``batch`` is a float32 (N, C, H, W) array fitting ``expected`` (C, H, W).

    A None in ``expected`` is a dim the model leaves free. Returns the batch unchanged.
    """
    shape_text = _shape_text(expected)
    if not isinstance(batch, np.ndarray):
        raise InputError(
            f"expected a numpy float32 array of shape {shape_text}, got {type(batch).__name__}; "
            "convert with np.asarray(batch, dtype=np.float32)"
        )
    if batch.dtype != np.float32:
        hint = (
            "for uint8 images call Session.predict(images), which resizes and normalizes them"
            if batch.dtype == np.uint8
            else "convert with batch.astype(np.float32)"
        )
        raise InputError(f"expected dtype float32, got {batch.dtype}; {hint}")
    if batch.ndim != 4:
        raise InputError(
            f"expected a 4-D batch {shape_text} (NCHW), got {batch.ndim}-D shape {batch.shape}; "
            "add the batch axis with batch[None] for one image"
        )
    if batch.shape[0] == 0:
        raise InputError(f"expected at least one item in the batch {shape_text}, got shape {batch.shape}")
    _check_layout(batch.shape, expected, shape_text)
    return batch


def looks_unnormalized(batch: np.ndarray) -> bool:
    """True when float values look like raw 0..255 pixels rather than normalized ones."""
    return batch.size > 0 and float(batch.min()) >= 0.0 and float(batch.max()) > 20.0


def _check_layout(shape: tuple[int, ...], expected: ExpectedCHW, shape_text: str) -> None:
    channels, height, width = expected
    _, got_c, got_h, got_w = shape
    if channels is not None and got_c != channels:
        if got_w == channels:
            raise InputError(
                f"expected shape {shape_text} (NCHW), got {shape}, which looks channels-last (NHWC); "
                "transpose it to NCHW with batch.transpose(0, 3, 1, 2)"
            )
        raise InputError(
            f"expected {channels} channels (shape {shape_text}), got {got_c} channels in shape {shape}; "
            f"give {channels}-channel images (Session.predict converts gray and RGBA images)"
        )
    if (height is not None and got_h != height) or (width is not None and got_w != width):
        raise InputError(
            f"expected images of {_dim(height)}x{_dim(width)} (H x W) as exported, got {got_h}x{got_w} in shape "
            f"{shape}; resize to {_dim(height)}x{_dim(width)} (Session.predict does) or re-export at the new size"
        )


def _shape_text(expected: ExpectedCHW) -> str:
    return "(N, " + ", ".join(_dim(d) for d in expected) + ")"


def _dim(value: int | None) -> str:
    return "?" if value is None else str(value)
