"""Keep in ``toolkit.layers`` only the module paths whose graph tensor holds what torch computes there.

``map_layers`` names the tensor each module's output became. After folding that is not always the
module's torch output: a BatchNorm folded *forward* into the next Conv/Linear leaves no tensor for its
own output, nor for what lies between it and that layer (a MaxPool, a Flatten, a Sequential ending
there): the graph carries those values un-normalized. Such a path would hand an app wrong numbers, so
each recorded path is checked on a seeded random batch against forward hooks on the *unfolded* model,
with one convention: a Conv/Linear that absorbed the BatchNorm after it names the folded output (the
BatchNorm's). Paths that differ are left out and reported with the difference.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from exporters._diagnose import _hooked_outputs
from exporters.fold import FoldEntry
from runtime.graph import add_outputs

__all__ = ["check_layers"]

_RTOL = 1e-4  # of the largest |value| of the layer (at least 1): float32 noise is far below, a BN shift far above


def check_layers(proto: onnx.ModelProto, model: nn.Module, layers: dict[str, str], folds: Sequence[FoldEntry],
                 input_shape: tuple[int, ...], input_name: str) -> tuple[dict[str, str], dict[str, str]]:
    """(layers whose tensor matches torch, {path: why it was left out}) for ``proto`` exported from the unfolded
    ``model``; ``input_shape`` is (N, C, H, W) of the batch to check on (a batch size the model runs at)."""
    if not layers:
        return {}, {}
    x = torch.randn(*input_shape, generator=torch.Generator().manual_seed(0)).numpy()  # (N, C, H, W)
    expected = _hooked_outputs(copy.deepcopy(model).cpu().eval(), x, layers)
    for entry in folds:
        if entry.direction == "backward" and entry.into in layers and entry.bn in expected:
            expected[entry.into] = expected[entry.bn]  # the folded Conv/Linear computes its BatchNorm's output
    got = _graph_values(proto, x, layers, input_name)
    forward = [f"{e.bn} into {e.into}" for e in folds if e.direction == "forward"]
    cause = (f"; BatchNorm folded forward ({', '.join(forward)}) leaves no tensor for itself or for what lies "
             "between it and the layer it folded into" if forward else "")
    kept: dict[str, str] = {}
    dropped: dict[str, str] = {}
    for path, tensor in layers.items():
        why = _mismatch(expected.get(path), got[path])
        if why:
            dropped[path] = f"no graph tensor holds its torch output (tensor {tensor}: {why}){cause}"
        else:
            kept[path] = tensor
    return kept, dropped


def _graph_values(proto: onnx.ModelProto, x: np.ndarray, layers: dict[str, str],
                  input_name: str) -> dict[str, np.ndarray]:
    """Every recorded tensor from one onnxruntime run of ``proto`` with those tensors as extra outputs."""
    inner = list(dict.fromkeys(t for t in layers.values() if t != input_name))
    session = ort.InferenceSession(add_outputs(proto, inner).SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = dict(zip(inner, session.run(inner, {input_name: x}), strict=True)) if inner else {}
    outputs[input_name] = x
    return {path: outputs[tensor] for path, tensor in layers.items()}


def _mismatch(expected: np.ndarray | None, got: np.ndarray) -> str:
    """Why ``got`` is not ``expected`` ("" when it is, within the tolerance)."""
    if expected is None:
        return "torch gives no tensor there"
    if expected.shape != got.shape:
        return f"shape {got.shape}, torch {expected.shape}"
    if not expected.size:
        return ""
    diff = float(np.max(np.abs(expected.astype(np.float64) - got)))
    scale = max(1.0, float(np.max(np.abs(expected))))
    return f"max |diff| {diff:.3g}" if diff > _RTOL * scale else ""
