"""Small reads and edits of an ONNX ModelProto shared by export and validation."""

from __future__ import annotations

import json
import re

import onnx
from onnx import numpy_helper

__all__ = [
    "default_opset",
    "count_ops",
    "rename_batch_dim",
    "set_metadata",
    "strip_debug_metadata",
    "training_batchnorms",
    "fixed_batch_nodes",
    "read_metadata",
    "drop_unknown_reduce_attribute",
]

BATCH_DIM = "batch"
_DEFAULT_DOMAINS = ("", "ai.onnx")
# Node metadata that carries local file paths and source text: large, and not ours to ship.
_DEBUG_KEYS = ("pkg.torch.onnx.stack_trace", "pkg.torch.onnx.fx_node")


def default_opset(model: onnx.ModelProto) -> int | None:
    """The opset version imported for the default (ai.onnx) domain, or None when absent."""
    versions = [o.version for o in model.opset_import if o.domain in _DEFAULT_DOMAINS]
    return versions[0] if versions else None


def count_ops(model: onnx.ModelProto, op_type: str) -> int:
    """Number of nodes of ``op_type`` in the main graph."""
    return sum(1 for node in model.graph.node if node.op_type == op_type)


def training_batchnorms(model: onnx.ModelProto) -> list[str]:
    """Names of BatchNormalization nodes in training mode (they would use batch statistics)."""
    return [
        node.name
        for node in model.graph.node
        if node.op_type == "BatchNormalization" and any(a.name == "training_mode" and a.i == 1 for a in node.attribute)
    ]


def rename_batch_dim(model: onnx.ModelProto) -> tuple[bool, str]:
    """Name the first input's leading dim ``batch`` everywhere it appears, in place.

    Returns (input batch was symbolic, the output's leading dim as text after renaming).
    A fixed input batch dim is made symbolic so the file follows the contract and a graph that
    really needs that batch size fails visibly at validation.
    """
    first = model.graph.input[0].type.tensor_type.shape.dim[0]
    was_symbolic = first.HasField("dim_param")
    if was_symbolic and first.dim_param != BATCH_DIM:
        pattern = re.compile(rf"\b{re.escape(first.dim_param)}\b")
        for info in (*model.graph.input, *model.graph.output, *model.graph.value_info):
            for dim in info.type.tensor_type.shape.dim:
                if dim.HasField("dim_param"):
                    dim.dim_param = pattern.sub(BATCH_DIM, dim.dim_param)
    elif not was_symbolic:
        first.dim_param = BATCH_DIM  # assigning the oneof field clears dim_value
    out = model.graph.output[0].type.tensor_type.shape.dim[0]
    return was_symbolic, out.dim_param if out.HasField("dim_param") else str(out.dim_value)


def strip_debug_metadata(model: onnx.ModelProto) -> None:
    """Drop node metadata holding stack traces and source text; keep module scopes."""
    for node in model.graph.node:
        kept = [p for p in node.metadata_props if p.key not in _DEBUG_KEYS]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)


def set_metadata(model: onnx.ModelProto, props: dict[str, object]) -> None:
    """Write ``props`` as metadata_props: strings as they are, anything else as JSON."""
    existing = {p.key: p for p in model.metadata_props}
    for key, value in props.items():
        text = value if isinstance(value, str) else json.dumps(value)
        if key in existing:
            existing[key].value = text
        else:
            model.metadata_props.add(key=key, value=text)


def read_metadata(model: onnx.ModelProto) -> dict[str, str]:
    """All metadata_props as a dict of strings."""
    return {p.key: p.value for p in model.metadata_props}


def fixed_batch_nodes(model: onnx.ModelProto) -> list[str]:
    """'name (Op) shape' for nodes whose constant shape input fixes the leading (batch) dim.

    Reshape/ConstantOfShape with a positive leading dim (0 copies, -1 infers), Expand/Tile with a
    leading value above 1 (1 broadcasts / keeps the batch).
    """
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    found = []
    for node in model.graph.node:
        index, minimum = {"Reshape": (1, 1), "ConstantOfShape": (0, 1), "Expand": (1, 2), "Tile": (1, 2)}.get(
            node.op_type, (None, 0)
        )
        if index is None or len(node.input) <= index or node.input[index] not in constants:
            continue
        shape = constants[node.input[index]].reshape(-1)
        if shape.size and int(shape[0]) >= minimum:
            found.append(f"{node.name} ({node.op_type}) shape {shape.tolist()}")
    return found


_REDUCE_OPS_WITH_AXES_INPUT_SINCE_18 = (
    "ReduceMean",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceSumSquare",
)


def drop_unknown_reduce_attribute(model: onnx.ModelProto) -> list[str]:
    """Remove ``noop_with_empty_axes=0`` that onnx's 18 -> 17 converter leaves on Reduce* nodes.

    Before opset 18 these ops have no such attribute (0 is the behaviour they always had). Returns
    the names of nodes with ``noop_with_empty_axes=1``, which have no lower-opset equivalent.
    """
    unconvertible = []
    for node in model.graph.node:
        if node.op_type not in _REDUCE_OPS_WITH_AXES_INPUT_SINCE_18:
            continue
        kept = [a for a in node.attribute if a.name != "noop_with_empty_axes"]
        if any(a.name == "noop_with_empty_axes" and a.i != 0 for a in node.attribute):
            unconvertible.append(node.name)
        del node.attribute[:]
        node.attribute.extend(kept)
    return unconvertible
