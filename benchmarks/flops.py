"""Multiply-accumulates per image, counted from the ONNX graph with shapes from onnx.shape_inference.

Conv:        MACs = output elements * (C_in / group) * kH * kW
ConvTranspose: MACs = input elements * (C_out / group) * kH * kW
Gemm/MatMul: MACs = output elements * K (the reduced dimension), i.e. M * N * K
Other ops (activations, pooling, additions) are not counted, as in most published MAC counts.
The batch dimension is pinned to 1 before inference, so the counts are per image.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import onnx

from benchmarks.errors import BenchmarkInputError

__all__ = ["MacCount", "count_macs"]

_COUNTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@dataclass(frozen=True)
class MacCount:
    """Total MACs per image and the count of each counted node (by node name or op and index)."""

    total: int
    per_node: dict[str, int] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()  # counted op types whose shapes could not be inferred


def count_macs(model: str | os.PathLike[str] | onnx.ModelProto) -> MacCount:
    """Count the MACs per image of an ONNX classifier whose first input is (batch, C, H, W)."""
    proto = onnx.load(os.fspath(model)) if not isinstance(model, onnx.ModelProto) else model
    shapes = _shapes_at_batch_one(proto)
    per_node: dict[str, int] = {}
    skipped: list[str] = []
    for index, node in enumerate(proto.graph.node):
        if node.op_type not in _COUNTED:
            continue
        key = node.name or f"{node.op_type}_{index}"
        macs = _node_macs(node, shapes)
        if macs is None:
            skipped.append(key)
        else:
            per_node[key] = macs
    return MacCount(total=sum(per_node.values()), per_node=per_node, skipped=tuple(skipped))


def _shapes_at_batch_one(proto: onnx.ModelProto) -> dict[str, list[int]]:
    """Every tensor name -> concrete shape, after pinning the input's batch dim to 1 and re-inferring."""
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    graph = model.graph
    if not graph.input or len(graph.input[0].type.tensor_type.shape.dim) == 0:
        raise BenchmarkInputError(
            f"expected a graph input shaped (batch, C, H, W), got model {graph.name!r} without one"
        )
    graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    # Drop shapes recorded at export (symbolic batch) so inference recomputes them at batch 1.
    del graph.value_info[:]
    for output in graph.output:
        output.type.tensor_type.ClearField("shape")
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    shapes = {init.name: list(init.dims) for init in inferred.graph.initializer}
    for info in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        dims = info.type.tensor_type.shape.dim
        if info.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            shapes[info.name] = [d.dim_value for d in dims]
    return shapes


def _node_macs(node: onnx.NodeProto, shapes: dict[str, list[int]]) -> int | None:
    """MACs of one counted node at batch 1, or None when a shape it needs is unknown."""
    a, b = (shapes.get(name) for name in (list(node.input) + ["", ""])[:2])
    output = shapes.get(node.output[0])
    if a is None or b is None or output is None:
        return None
    attrs = {attr.name: onnx.helper.get_attribute_value(attr) for attr in node.attribute}
    if node.op_type == "Conv":
        # b: weight (C_out, C_in / group, kH, kW); the group count is already in its shape.
        return math.prod(output) * math.prod(b[1:])
    if node.op_type == "ConvTranspose":
        # b: weight (C_in, C_out / group, kH, kW); each input element feeds C_out/group * kH * kW outputs.
        return math.prod(a) * math.prod(b[1:])
    if node.op_type == "Gemm":
        reduced = a[0] if attrs.get("transA", 0) else a[1]  # a: (M, K), or (K, M) with transA
        return math.prod(output) * reduced
    return math.prod(output) * a[-1]  # MatMul: (..., M, K) @ (..., K, N)
