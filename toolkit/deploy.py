"""Checkpoint -> folded ONNX file -> validation on real test images, as one library call for the CLI."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.checkpoint import Checkpoint, load_checkpoint
from toolkit.data import iterate_batches, load_cifar10
from toolkit.errors import ToolkitError
from toolkit.fileio import write_json_atomic
from toolkit.models import get_model_spec

log = logging.getLogger(__name__)


@dataclass
class ExportOutcome:
    """What `toolkit export` produced: the ONNX file, its JSON report, and the report's content."""

    onnx_path: Path
    report_path: Path
    report: dict[str, Any]
    passed: bool


def test_images(checkpoint: Checkpoint, count: int, data: str | os.PathLike | None = None) -> np.ndarray:
    """The first ``count`` real CIFAR-10 test images, prepared as the model expects: float32 (N,C,H,W)."""
    cifar = load_cifar10(data)
    size = checkpoint.input_size[1]
    batches = iterate_batches(cifar.test_images[:count], cifar.test_labels[:count], batch_size=256,
                              shuffle=False, mean=checkpoint.mean, std=checkpoint.std,
                              image_size=size if size != 32 else None)
    return np.concatenate([x.numpy() for x, _ in batches])


def export_checkpoint(checkpoint_path: str | os.PathLike, onnx_path: str | os.PathLike | None = None, *,
                      opset: int = 18, data: str | os.PathLike | None = None, images: int = 512,
                      batch_sizes: tuple[int, ...] = (1, 7, 64), atol: float | None = None, rtol: float | None = None,
                      diagnose: bool = False) -> ExportOutcome:
    """Fold, export and validate the model of ``checkpoint_path``; write ``<onnx>.json`` beside it."""
    from exporters import diagnose_export, export_onnx, validate_export

    if isinstance(images, bool) or not isinstance(images, int) or images < 1:
        raise ToolkitError(f"images is {images!r}: expected a positive number of test images to validate on")
    ckpt = load_checkpoint(checkpoint_path)
    spec = get_model_spec(ckpt.name)
    atol = spec.atol if atol is None else atol
    rtol = spec.rtol if rtol is None else rtol
    out = Path(onnx_path) if onnx_path else Path(checkpoint_path).with_name(f"{ckpt.name}.onnx")
    result = export_onnx(ckpt.model, out, input_size=ckpt.input_size, metadata=ckpt.export_metadata(),
                         opset=opset)
    prepared = test_images(ckpt, images, data)
    validation = validate_export(ckpt.model, out, prepared, batch_sizes=batch_sizes, atol=atol, rtol=rtol)
    report = {**result.to_dict(), **validation.to_dict(), "checkpoint": str(checkpoint_path),
              "images": len(prepared), "atol": atol, "rtol": rtol}
    if diagnose or not validation:
        report["diagnosis"] = diagnose_export(ckpt.model, out, prepared[:8], atol=atol).to_dict()
    report_path = write_json_atomic(out.with_suffix(".json"), report)
    return ExportOutcome(out, report_path, report, bool(validation))
