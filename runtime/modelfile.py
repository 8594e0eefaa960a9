"""Checks on a model file before onnxruntime sees it.

onnxruntime and protobuf report a bad file as a parse failure deep in C++; these checks name the
file, its size and the likely cause (missing, empty, Git LFS pointer, truncated, unsafe external
data) in one line instead.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from runtime.errors import ModelFileError

__all__ = ["check_model_file", "load_model_proto", "describe_load_failure"]

logger = logging.getLogger(__name__)

_LFS_MAGIC = b"version https://git-lfs.github.com/spec/v1"


def check_model_file(path: str | os.PathLike[str]) -> Path:
    """Check that ``path`` is a non-empty regular file that is not a Git LFS pointer.

    Returns the path as a ``Path``; raises ``ModelFileError`` with a one-line cause otherwise.
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file {path} does not exist; check the path or export the model first")
    if not path.is_file():
        raise ModelFileError(f"model path {path} is not a regular file; pass the path of the .onnx file itself")
    size = path.stat().st_size
    if size == 0:
        raise ModelFileError(
            f"model file {path} is empty (0 bytes); the export or download was interrupted, re-export or re-download it"
        )
    with path.open("rb") as handle:
        head = handle.read(256)
    if head.startswith(_LFS_MAGIC):
        raise ModelFileError(
            f"model file {path} ({size} bytes) is a Git LFS pointer{_lfs_real_size(head)}, not the model; "
            "fetch the real file (git lfs pull)"
        )
    return path


def load_model_proto(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Check ``path`` and parse it as an ONNX model without loading external data.

    Raises ``ModelFileError`` when the file is missing, empty, a Git LFS pointer, truncated or not an
    ONNX model, or when its external data would be read from outside the model's folder.
    """
    path = check_model_file(path)
    size = path.stat().st_size
    try:
        model = onnx.load(os.fspath(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ModelFileError(_not_onnx_message(path, size, exc)) from exc
    # Arbitrary bytes sometimes parse as a message of unknown fields; a real export has a graph.
    if not model.graph.node or not model.graph.input:
        raise ModelFileError(
            f"model file {path} ({size} bytes) holds no ONNX graph (no nodes or no inputs); "
            "it is truncated or not an ONNX model, re-export or re-download it"
        )
    check_external_data(model, path)
    return model


def describe_load_failure(path: Path, exc: BaseException) -> str:
    """One-line message for an onnxruntime failure to load a file that onnx could parse."""
    size = path.stat().st_size if path.is_file() else 0
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return (
        f"onnxruntime could not load model file {path} ({size} bytes) ({reason}); it is truncated, corrupt or "
        "not an ONNX model this onnxruntime supports (check its opset and operators), re-export or re-download it"
    )


def check_external_data(model: onnx.ModelProto, path: Path) -> None:
    """Refuse external-data locations that resolve outside the model's folder, or are missing."""
    folder = path.resolve().parent
    for tensor in _iter_tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        entries = {entry.key: entry.value for entry in tensor.external_data}
        location = entries.get("location", "")
        target = (folder / location).resolve()
        if not location or not target.is_relative_to(folder):
            raise ModelFileError(
                f"model file {path} ({path.stat().st_size} bytes) stores tensor '{tensor.name}' in external data "
                f"at '{location}', outside the model's folder {folder}; refusing to read it, "
                "re-export the model as a single self-contained file"
            )
        if not target.is_file():
            raise ModelFileError(
                f"model file {path} ({path.stat().st_size} bytes) needs external data file '{location}' for tensor "
                f"'{tensor.name}', which is missing from {folder}; copy it next to the model or re-export"
            )


def _iter_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every TensorProto of a graph: initializers, sparse parts, node attributes and subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _iter_tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _iter_tensors(subgraph)


def _not_onnx_message(path: Path, size: int, exc: BaseException) -> str:
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return (
        f"model file {path} ({size} bytes) could not be read as an ONNX model ({reason}); "
        "it is truncated or not an ONNX model, re-export or re-download it"
    )


def _lfs_real_size(head: bytes) -> str:
    """' of a N-byte file' when the pointer states the real size, else ''."""
    match = re.search(rb"^size (\d+)", head, flags=re.MULTILINE)
    return f" to a {int(match.group(1))}-byte file" if match else ""
