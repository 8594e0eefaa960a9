"""Private onnxruntime access for validation and diagnosis (CPU, no input checks).

Kept to a few lines on purpose: it is a stand-in until ``runtime.Session`` (same project) is
importable, after which ``run`` / ``run_tensors`` map onto ``Session.run`` / ``Session.intermediates``.
Validation feeds batches the runtime's checks would accept anyway (float32 NCHW).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import onnx
import onnxruntime as ort

__all__ = ["open_session", "run", "run_tensors"]


def open_session(model: str | os.PathLike[str] | onnx.ModelProto) -> ort.InferenceSession:
    """A CPU onnxruntime session for a model file or an in-memory ModelProto."""
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: shape-inference warnings are expected for broken graphs
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else os.fspath(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def run(session: ort.InferenceSession, batch: np.ndarray) -> np.ndarray:
    """The first output (logits) for a float32 NCHW ``batch``."""
    return session.run(None, {session.get_inputs()[0].name: batch})[0]


def run_tensors(model: onnx.ModelProto, batch: np.ndarray, tensors: Sequence[str]) -> dict[str, np.ndarray]:
    """Values of the named graph tensors for ``batch`` (each added as a graph output)."""
    extended = onnx.ModelProto()
    extended.CopyFrom(model)
    graph = extended.graph
    inputs = {i.name for i in graph.input}
    present = {o.name for o in graph.output}
    wanted = [name for name in dict.fromkeys(tensors) if name not in inputs]
    for name in wanted:
        if name not in present:
            graph.output.append(onnx.ValueInfoProto(name=name))  # onnxruntime infers type and shape
    session = open_session(extended)
    values = dict(zip(wanted, session.run(wanted, {graph.input[0].name: batch})))
    values.update({name: batch for name in tensors if name in inputs})  # a layer that returns its input
    return values
