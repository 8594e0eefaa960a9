"""``diagnose_export``: the first torch module whose output differs in the ONNX graph.

Every module recorded in ``toolkit.layers`` is compared: the torch side through forward hooks on the
model as it was exported (folded when the export folded), the ONNX side by adding the recorded
tensors as graph outputs. Layers are compared in graph order, so the first mismatch is where the
difference starts.
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
from exporters.fold import fold_batchnorm
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
    """Per-layer differences in graph order and the first module path above ``atol`` (None: all match)."""

    atol: float
    layers: tuple[LayerDiff, ...]
    first_mismatch: str | None

    def __bool__(self) -> bool:
        return self.first_mismatch is None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready summary."""
        return {"atol": self.atol, "first_mismatch": self.first_mismatch, "layers": [asdict(d) for d in self.layers]}

    def __str__(self) -> str:
        head = f"first layer differing by more than {self.atol:g}: {self.first_mismatch or 'none'}"
        rows = [
            f"  {d.path:<28} {('n/a' if d.max_abs_diff is None else f'{d.max_abs_diff:.3g}'):>10}  {d.note}".rstrip()
            for d in self.layers
        ]
        return "\n".join([head, *rows])


def diagnose_export(
    model: nn.Module, onnx_path: str | os.PathLike[str], images: np.ndarray, *, atol: float
) -> DiagnoseReport:
    """Compare every recorded layer of the ONNX file at ``onnx_path`` with ``model`` on ``images``.

    ``images`` is float32 (N, C, H, W), normalized; a few are enough. Returns the differences and the
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
    folded = bool(json.loads(props.get("toolkit.export", "{}")).get("folded"))
    reference = _reference_model(model, folded, images.shape[1:])
    torch_values = _hooked_outputs(reference, images, layers)
    onnx_values = _onnx_values(onnx_path, proto, images, layers)
    order = _graph_order(proto, layers, [path for path, _ in reference.named_modules()])
    diffs = [_diff(p, layers[p], torch_values.get(p), onnx_values[p]) for p in order]
    first = next((d.path for d in diffs if d.max_abs_diff is None or d.max_abs_diff > atol), None)
    return DiagnoseReport(float(atol), tuple(diffs), first)


def _reference_model(model: nn.Module, folded: bool, chw: tuple[int, ...]) -> nn.Module:
    """The model as exported: folded the same way when the export folded, else an eval copy."""
    copied = copy.deepcopy(model).cpu().eval()
    return fold_batchnorm(copied, input_size=(chw[0], chw[1], chw[2]))[0] if folded else copied


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
