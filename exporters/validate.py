"""``validate_export``: does the ONNX file give the torch model's logits at every batch size?

The torch side is the model as given (unfolded, eval mode); the ONNX side is onnxruntime on CPU.
The result is a report that lists every failure, not a boolean (``diagnose_export`` then names the
first layer that differs).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from exporters._diagnose import DiagnoseReport, LayerDiff, diagnose_export
from exporters._onnx_graph import count_ops, default_opset, fixed_batch_nodes, read_metadata
from exporters.errors import ExportError, ValidationError
from runtime import Session

__all__ = ["BatchResult", "ValidationReport", "validate_export", "DiagnoseReport", "LayerDiff", "diagnose_export"]


@dataclass(frozen=True)
class BatchResult:
    """Torch vs onnxruntime at one batch size (differences are None when onnxruntime did not run)."""

    batch_size: int
    images: int
    max_abs_diff: float | None
    max_rel_diff: float | None
    top1_agreement: float | None
    error: str | None = None


@dataclass(frozen=True)
class ValidationReport:
    """Outcome of ``validate_export``: truthy when every batch size passed."""

    path: Path
    opset: int | None
    batchnorm_folded: int
    batchnorm_nodes: int
    atol: float
    rtol: float
    results: tuple[BatchResult, ...]
    failures: tuple[str, ...]

    def __bool__(self) -> bool:
        return not self.failures

    @property
    def batch_sizes(self) -> list[int]:
        """The batch sizes checked (those asked for, plus 2 and an odd size above 2)."""
        return [r.batch_size for r in self.results]

    @property
    def max_abs_diff(self) -> float | None:
        """Largest |torch - onnx| logit difference over every batch size that ran."""
        return _worst([r.max_abs_diff for r in self.results], max)

    @property
    def max_rel_diff(self) -> float | None:
        """``max_abs_diff`` divided by the largest |torch logit|, worst batch size."""
        return _worst([r.max_rel_diff for r in self.results], max)

    @property
    def top1_agreement(self) -> float | None:
        """Fraction of images whose top-1 class agrees, worst batch size."""
        return _worst([r.top1_agreement for r in self.results], min)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready summary."""
        return {
            "passed": bool(self),
            "path": str(self.path),
            "opset": self.opset,
            "batchnorm_folded": self.batchnorm_folded,
            "batchnorm_nodes": self.batchnorm_nodes,
            "atol": self.atol,
            "rtol": self.rtol,
            "max_abs_diff": self.max_abs_diff,
            "max_rel_diff": self.max_rel_diff,
            "top1_agreement": self.top1_agreement,
            "batch_sizes": self.batch_sizes,
            "per_batch_size": [asdict(r) for r in self.results],
            "failures": list(self.failures),
        }

    def raise_for_failure(self) -> None:
        """Raise ``ValidationError`` listing every failure; do nothing on pass."""
        if self.failures:
            raise ValidationError(
                f"{self.path.name} disagrees with the torch model (atol {self.atol:g}, rtol {self.rtol:g}): "
                + "; ".join(self.failures)
            )

    def __str__(self) -> str:
        verdict = "PASS" if self else "FAIL"
        lines = [
            f"{verdict} {self.path.name}: opset {self.opset}, {self.batchnorm_folded} BN folded, "
            f"{self.batchnorm_nodes} BatchNormalization nodes, atol {self.atol:g}, rtol {self.rtol:g}"
        ]
        for r in self.results:
            lines.append(
                f"  batch {r.batch_size:>3}: max abs {_fmt(r.max_abs_diff)}, max rel {_fmt(r.max_rel_diff)}, "
                f"top-1 {_fmt(r.top1_agreement)}"
            )
        lines += [f"  failure: {f}" for f in self.failures]
        return "\n".join(lines)


def validate_export(
    model: nn.Module,
    onnx_path: str | os.PathLike[str],
    images: np.ndarray,
    *,
    batch_sizes: tuple[int, ...] = (1, 7, 64),
    atol: float = 1e-4,
    rtol: float = 0.0,
) -> ValidationReport:
    """Compare the logits of ``model`` (eval, unfolded) and the ONNX file on ``images``.

    ``images`` is float32 (N, C, H, W), already normalized. Each batch size runs over all images in
    chunks (the last may be smaller; images are repeated when fewer than one batch); 2 and an odd
    size above 2 are always added so a fixed batch shows. Passes when every batch size ran with the
    right output shape, top-1 agrees on every image, and max abs diff <= ``atol`` (or, with
    ``rtol > 0``, max abs diff / max |logit| <= ``rtol``).
    """
    sizes = _check_validate_args(images, batch_sizes, atol, rtol)
    path = Path(onnx_path)
    proto = onnx.load(os.fspath(path), load_external_data=False)
    session = Session(path, "cpu")
    _check_image_shape(images, session.inference_session.get_inputs()[0].shape)
    fixed = fixed_batch_nodes(proto)
    results, failures = [], []
    for size in sizes:
        result, failure = _check_batch_size(model, session, images, size, fixed, (atol, rtol))
        results.append(result)
        failures += failure
    export_info = json.loads(read_metadata(proto).get("toolkit.export", "{}"))
    return ValidationReport(
        path=path,
        opset=default_opset(proto),
        batchnorm_folded=len(export_info.get("folded", [])),
        batchnorm_nodes=count_ops(proto, "BatchNormalization"),
        atol=float(atol),
        rtol=float(rtol),
        results=tuple(results),
        failures=tuple(failures),
    )


def _check_batch_size(
    model: nn.Module, session: Session, images: np.ndarray, size: int, fixed: list[str], tol: tuple[float, float]
) -> tuple[BatchResult, list[str]]:
    """Run every chunk of ``size`` through torch and onnxruntime; the result and its failures."""
    chunks = _chunks(images, size)
    torch_out, torch_error = _torch_logits(model, chunks)
    onnx_out, onnx_error = _onnx_logits(session, chunks)
    where = f"; nodes that fix the batch: {', '.join(fixed)}" if fixed else ""
    count = sum(len(c) for c in chunks)
    if onnx_error is not None:
        also = f"; the torch model fails too ({torch_error})" if torch_error else ""
        message = f"batch size {size}: onnxruntime failed: {onnx_error}{where}{also}"
        return BatchResult(size, count, None, None, None, onnx_error), [message]
    if torch_error is not None:
        message = f"batch size {size}: the torch model fails ({torch_error}) while onnxruntime runs"
        return BatchResult(size, count, None, None, None, torch_error), [message]
    assert torch_out is not None and onnx_out is not None
    if onnx_out.shape != torch_out.shape:
        error = f"onnxruntime output shape {onnx_out.shape}, torch {torch_out.shape}"
        return BatchResult(size, count, None, None, None, error), [f"batch size {size}: {error}{where}"]
    return _compare(size, torch_out, onnx_out, *tol)


def _compare(
    size: int, expected: np.ndarray, got: np.ndarray, atol: float, rtol: float
) -> tuple[BatchResult, list[str]]:
    abs_diff = float(np.max(np.abs(expected.astype(np.float64) - got)))
    scale = float(np.max(np.abs(expected)))
    rel_diff = abs_diff / scale if scale > 0 else (0.0 if abs_diff == 0 else float("inf"))
    top1 = float(np.mean(np.argmax(expected, axis=1) == np.argmax(got, axis=1)))
    failures = []
    if not (abs_diff <= atol or (rtol > 0 and rel_diff <= rtol)):
        rel = f" and max rel diff {rel_diff:.3g} > rtol {rtol:g}" if rtol > 0 else f" (max rel diff {rel_diff:.3g})"
        failures.append(f"batch size {size}: max abs diff {abs_diff:.3g} > atol {atol:g}{rel}")
    if top1 < 1.0:
        failures.append(f"batch size {size}: top-1 class agrees on {top1:.2%} of {len(expected)} images, expected 100%")
    return BatchResult(size, len(expected), abs_diff, rel_diff, top1), failures


def _torch_logits(model: nn.Module, chunks: list[np.ndarray]) -> tuple[np.ndarray | None, str | None]:
    was_training = model.training
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    model.eval()
    try:
        with torch.inference_mode():
            outputs = [model(torch.from_numpy(c).to(device)).float().cpu().numpy() for c in chunks]
        return np.concatenate(outputs), None
    except Exception as exc:  # the model's own failure is part of the report
        return None, _first_line(exc)
    finally:
        model.train(was_training)


def _onnx_logits(session: Session, chunks: list[np.ndarray]) -> tuple[np.ndarray | None, str | None]:
    outputs = []
    for chunk in chunks:
        try:
            out = session.run(chunk)
        except Exception as exc:  # onnxruntime raises its own (pybind) exception types
            return None, _ort_message(exc)
        if out.ndim != 2 or out.shape[0] != len(chunk):
            return None, f"output shape {out.shape} for a batch of {len(chunk)}"
        outputs.append(out)
    return np.concatenate(outputs), None


def _chunks(images: np.ndarray, size: int) -> list[np.ndarray]:
    """``images`` in batches of ``size``; repeated to one full batch when there are fewer."""
    if len(images) < size:
        images = np.resize(images, (size, *images.shape[1:]))  # cycles through the images
    return [np.ascontiguousarray(images[i : i + size]) for i in range(0, len(images), size)]


def _check_validate_args(images: object, batch_sizes: object, atol: float, rtol: float) -> list[int]:
    if not isinstance(images, np.ndarray) or images.dtype != np.float32 or images.ndim != 4 or not len(images):
        got = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        raise ExportError(f"expected images as a non-empty float32 (N, C, H, W) array, got {got}; normalize them first")
    sizes = list(batch_sizes) if isinstance(batch_sizes, (tuple, list)) else []
    if not sizes or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes):
        raise ExportError(f"expected batch_sizes a non-empty sequence of positive ints, got {batch_sizes!r}")
    if not (atol >= 0 and rtol >= 0):
        raise ExportError(f"expected atol >= 0 and rtol >= 0, got atol={atol!r}, rtol={rtol!r}")
    extra = [2] + ([] if any(s > 2 and s % 2 for s in sizes) else [3])  # a dynamic batch must take these
    return sorted(set(sizes) | set(extra))


def _check_image_shape(images: np.ndarray, input_shape: list[Any]) -> None:
    expected = input_shape[1:]
    if any(isinstance(e, int) and e != g for e, g in zip(expected, images.shape[1:])):
        raise ExportError(f"expected images of shape (N, {', '.join(map(str, expected))}), got {images.shape}")


def _worst(values: list[float | None], pick: Any) -> float | None:
    present = [v for v in values if v is not None]
    return pick(present) if present else None


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _ort_message(exc: BaseException) -> str:
    """onnxruntime's run error, shortened to the failing node and its status message."""
    text = " ".join(str(exc).split())
    found = re.search(r"running (\w+) node\. Name:'([^']*)' Status Message: (.*)", text)
    if found:
        return f"{found.group(1)} node {found.group(2)!r}: {found.group(3)[:200]}"
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"
