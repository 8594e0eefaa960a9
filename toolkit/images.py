"""Photo files -> uint8 HWC arrays (the decoding half of prediction; the runtime does the rest)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from toolkit.errors import ToolkitError


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode a photo to a uint8 array: (H, W) grayscale, (H, W, 3) RGB or (H, W, 4) RGBA, as stored."""
    from PIL import Image, UnidentifiedImageError

    file = Path(path)
    if file.is_dir():
        raise ToolkitError(f"image {file} is a folder: expected a JPEG/PNG photo file; pass the photos in it "
                           f"(for example {file}/*.jpg)")
    if not file.is_file():
        raise ToolkitError(f"image {file} does not exist: expected a JPEG/PNG photo file")
    try:
        with Image.open(file) as img:
            if img.mode not in ("L", "RGB", "RGBA"):
                img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
            return np.asarray(img, dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError) as exc:
        raise ToolkitError(f"{file} ({file.stat().st_size} bytes) is not an image Pillow can read ({exc})") from None
