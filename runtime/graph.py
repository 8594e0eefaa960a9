"""Graph edits for reading intermediate tensors: a copy of the model with extra graph outputs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import onnx
from onnx.external_data_helper import load_external_data_for_model, uses_external_data

from runtime.errors import ModelFileError
from runtime.modelfile import load_model_proto

__all__ = ["load_full_model", "add_outputs"]

logger = logging.getLogger(__name__)


def load_full_model(path: Path) -> onnx.ModelProto:
    """Check and load the model at ``path`` with any external data inlined (so it can be serialized)."""
    model = load_model_proto(path)
    if any(uses_external_data(t) for t in model.graph.initializer):
        load_external_data_for_model(model, str(path.resolve().parent))
    return model


def add_outputs(model: onnx.ModelProto, tensor_names: Sequence[str]) -> onnx.ModelProto:
    """Copy of ``model`` whose graph also outputs ``tensor_names``; the original outputs come first.

    Types and shapes come from onnx shape inference; a tensor it could not type is added by name only
    (onnxruntime infers it). Raises ``ModelFileError`` for a name no node, input or initializer produces.
    """
    extended = onnx.ModelProto()
    extended.CopyFrom(model)
    graph = extended.graph
    known = {out for node in graph.node for out in node.output}
    known |= {t.name for t in graph.initializer} | {i.name for i in graph.input}
    absent = [name for name in tensor_names if name not in known]
    if absent:
        raise ModelFileError(
            f"metadata toolkit.layers names tensors {absent} that are not in the graph of model "
            f"{graph.name!r}; the metadata does not match this graph, re-export the model"
        )
    typed = _inferred_value_infos(extended)
    present = {output.name for output in graph.output}
    for name in dict.fromkeys(tensor_names):  # ordered and without duplicates
        if name in present:
            continue
        info = onnx.ValueInfoProto()
        info.CopyFrom(typed.get(name, onnx.ValueInfoProto(name=name)))
        graph.output.append(info)
    return extended


def _inferred_value_infos(model: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    """name -> ValueInfoProto of every tensor shape inference could type."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception as exc:  # inference is a convenience here: onnxruntime can type outputs itself
        logger.debug("shape inference failed (%s); adding outputs by name only", exc)
        return {}
    graph = inferred.graph
    return {info.name: info for info in (*graph.input, *graph.value_info, *graph.output)}
