"""``diagnose_export``: did folding change the model, and which torch module first differs in ONNX?

When the export folded BatchNorm, the folded torch model is first compared with the unfolded one on
the images: a wrong fold is in the ONNX file too, so only this comparison can see it. Then every
module recorded in ``toolkit.layers`` is compared: the torch side through forward hooks on the model
as it was exported (folded when the export folded), the ONNX side by adding the recorded tensors as
graph outputs. Layers are compared in graph order, so the first mismatch is where the difference
starts.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from exporters.errors import ExportError
from exporters.fold import FoldEntry, fold_batchnorm
from runtime import Session

__all__ = ["LayerDiff", "DiagnoseReport", "diagnose_export"]


@dataclass(frozen=True)
class LayerDiff:
    """One module's output compared: max |torch - onnx|, or None with a note when not comparable."""

    path: str
    tensor: str
    max_abs_diff: float | None
    note: str = ""


@dataclass(frozen=True)
class DiagnoseReport:
    """Whether folding changed the torch output, per-layer differences in graph order, and the first
    module path above ``atol`` (None: all match). Truthy when neither folding nor export changed anything.

    ``fold_max_abs_diff`` is max |folded - unfolded| torch logit on the images (None when the export
    did not fold); ``folded`` lists the BNs folded, forward folds first (the ones that need the most
    reasoning to be exact).
    """

    atol: float
    layers: tuple[LayerDiff, ...]
    first_mismatch: str | None
    fold_max_abs_diff: float | None = None
    folded: tuple[FoldEntry, ...] = ()

    def __bool__(self) -> bool:
        return self.first_mismatch is None and not self.folding_changed_output

    @property
    def folding_changed_output(self) -> bool:
        """True when the folded torch model's logits differ from the unfolded ones by more than ``atol``."""
        return self.fold_max_abs_diff is not None and self.fold_max_abs_diff > self.atol

    @property
    def message(self) -> str:
        """One line for a person: what differs first, and where."""
        if self.folding_changed_output:
            then = (
                f"; the ONNX file then first differs from the folded model at {self.first_mismatch}"
                if self.first_mismatch
                else "; the ONNX file matches the folded model layer by layer"
            )
            return (
                f"BatchNorm folding changed the output: folded vs unfolded torch logits differ by "
                f"{self.fold_max_abs_diff:.3g} > atol {self.atol:g}; folded {_describe_folds(self.folded)}{then}"
            )
        if self.first_mismatch:
            return f"first layer differing by more than {self.atol:g}: {self.first_mismatch}"
        folding = "" if self.fold_max_abs_diff is None else ", and folding BatchNorm did not change the logits"
        return f"every layer of the ONNX file matches torch within {self.atol:g}{folding}"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready summary, with the one-line ``message``."""
        return {
            "message": self.message,
            "atol": self.atol,
            "folding_changed_output": self.folding_changed_output,
            "fold_max_abs_diff": self.fold_max_abs_diff,
            "folded": [e.to_dict() for e in self.folded],
            "first_mismatch": self.first_mismatch,
            "layers": [asdict(d) for d in self.layers],
        }

    def __str__(self) -> str:
        rows = [
            f"  {d.path:<28} {('n/a' if d.max_abs_diff is None else f'{d.max_abs_diff:.3g}'):>10}  {d.note}".rstrip()
            for d in self.layers
        ]
        return "\n".join([self.message, *rows])


def diagnose_export(
    model: nn.Module, onnx_path: str | os.PathLike[str], images: np.ndarray, *, atol: float
) -> DiagnoseReport:
    """Compare ``model`` with the ONNX file at ``onnx_path`` on ``images``: first the fold, then each layer.

    ``images`` is float32 (N, C, H, W), normalized; a few are enough. When the export folded
    BatchNorm, the folded torch model's logits are first compared with the unfolded ones (a wrong
    fold is in the ONNX file too, so the layer comparison alone cannot see it). Then every layer
    recorded in ``toolkit.layers`` is compared with the model as exported, and the report names the
    first module path (in graph order) whose output differs by more than ``atol``.
    """
    if not isinstance(images, np.ndarray) or images.dtype != np.float32 or images.ndim != 4 or not len(images):
        got = getattr(images, "shape", type(images).__name__)
        raise ExportError(f"expected images as a non-empty float32 (N, C, H, W) array, got {got}")
    proto = onnx.load(os.fspath(onnx_path))
    props = {p.key: p.value for p in proto.metadata_props}
    layers: dict[str, str] = json.loads(props.get("toolkit.layers", "{}"))
    if not layers:
        raise ExportError(f"{onnx_path} records no toolkit.layers; re-export it with exporters.export_onnx")
    reference = unfolded = copy.deepcopy(model).cpu().eval()
    fold_diff: float | None = None
    folds: tuple[FoldEntry, ...] = ()
    if json.loads(props.get("toolkit.export", "{}")).get("folded"):
        reference, fold_diff, folds = _fold_check(unfolded, images)
    torch_values = _hooked_outputs(reference, images, layers)
    onnx_values = _onnx_values(onnx_path, proto, images, layers)
    order = _graph_order(proto, layers, [path for path, _ in reference.named_modules()])
    diffs = [_diff(p, layers[p], torch_values.get(p), onnx_values[p]) for p in order]
    first = next((d.path for d in diffs if d.max_abs_diff is None or d.max_abs_diff > atol), None)
    return DiagnoseReport(float(atol), tuple(diffs), first, fold_diff, folds)


def _fold_check(unfolded: nn.Module, images: np.ndarray) -> tuple[nn.Module, float, tuple[FoldEntry, ...]]:
    """The model folded as the export folds it, max |folded - unfolded| logit, and its folds (forward first)."""
    folded, report = fold_batchnorm(unfolded, input_size=tuple(images.shape[1:]))
    expected, got = _logits(unfolded, images), _logits(folded, images)
    diff = float(np.max(np.abs(expected - got))) if expected.size else 0.0
    return folded, diff, tuple(sorted(report.folded, key=lambda e: e.direction != "forward"))  # stable sort


def _describe_folds(folds: tuple[FoldEntry, ...]) -> str:
    """``forward: 6 into 9, 11 into 12; backward: 1 into 0``."""
    parts = []
    for direction in ("forward", "backward"):
        named = [f"{e.bn} into {e.into}" for e in folds if e.direction == direction]
        parts += [f"{direction}: {', '.join(named)}"] if named else []
    return "; ".join(parts) or "nothing"


def _logits(model: nn.Module, images: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(images)).double().numpy()


def _hooked_outputs(model: nn.Module, images: np.ndarray, layers: dict[str, str]) -> dict[str, np.ndarray]:
    """Each recorded module's output (its last call) from one forward pass."""
    values: dict[str, np.ndarray] = {}
    modules = dict(model.named_modules())

    def hook_for(path: str) -> Any:
        def hook(_module: nn.Module, _args: Any, output: Any) -> None:
            if isinstance(output, torch.Tensor):
                values[path] = output.detach().float().numpy().copy()

        return hook

    handles = [modules[p].register_forward_hook(hook_for(p)) for p in layers if p in modules]
    try:
        with torch.inference_mode():
            model(torch.from_numpy(images))
    finally:
        for handle in handles:
            handle.remove()
    return values


def _onnx_values(
    path: str | os.PathLike[str], proto: onnx.ModelProto, images: np.ndarray, layers: dict[str, str]
) -> dict[str, np.ndarray]:
    """Each recorded layer's tensor from onnxruntime; a layer that returns the graph input gets ``images``."""
    inputs = {i.name for i in proto.graph.input}
    inner = [p for p, tensor in layers.items() if tensor not in inputs]
    values = Session(path, "cpu").intermediates(images, inner) if inner else {}
    return {**values, **{p: images for p, tensor in layers.items() if tensor in inputs}}


def _diff(path: str, tensor: str, expected: np.ndarray | None, got: np.ndarray) -> LayerDiff:
    if expected is None:
        return LayerDiff(path, tensor, None, "no torch output (module missing or not a tensor)")
    if expected.shape != got.shape:
        return LayerDiff(path, tensor, None, f"shape torch {expected.shape} vs onnx {got.shape}")
    return LayerDiff(path, tensor, float(np.max(np.abs(expected.astype(np.float64) - got))) if got.size else 0.0)


def _graph_order(proto: onnx.ModelProto, layers: dict[str, str], definition: list[str]) -> list[str]:
    """Paths by the position of the node producing their tensor; on a shared tensor the deeper path
    first, then definition order (so ``conv1`` comes before the Identity that replaced ``bn1``)."""
    position = {out: i for i, node in enumerate(proto.graph.node) for out in node.output}
    defined = {path: i for i, path in enumerate(definition)}
    return sorted(layers, key=lambda p: (position.get(layers[p], -1), -p.count("."), defined.get(p, len(defined))))
