"""Checks on a model file around onnxruntime's own loading, without the ``onnx`` package.

onnxruntime reports a bad file as a parse failure deep in C++; these checks name the file, its size
and the likely cause (missing, empty, Git LFS pointer, text, truncated, unsafe external data) in one
line instead. The byte-level checks read only the file's head; onnxruntime's load errors are
translated by ``describe_load_failure``. ``onnx`` (~20 MB resident) is imported only for files that
use external data (see ``check_external_data``) and by ``load_model_proto``, for graph edits.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime.errors import ModelFileError

if TYPE_CHECKING:
    import onnx

__all__ = ["check_model_file", "check_external_data", "check_graph_io", "describe_load_failure", "load_model_proto"]

logger = logging.getLogger(__name__)

_LFS_MAGIC = b"version https://git-lfs.github.com/spec/v1"
_HEAD_BYTES = 512
# An external-data entry is a StringStringEntryProto whose key is "location": field 1, 8 bytes long.
_LOCATION_KEY = b"\x0a\x08location"
_CHUNK = 1 << 20
_TEXT_CONTROLS = set("\t\n\r\f")


def check_model_file(path: str | os.PathLike[str]) -> Path:
    """Check ``path`` before onnxruntime reads it: a non-empty regular file holding binary protobuf.

    Refuses a missing path, a directory, an empty file, a Git LFS pointer, a text file and external
    data outside the model's folder. Returns the path as a ``Path``; raises ``ModelFileError``.
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
        head = handle.read(_HEAD_BYTES)
    if head.startswith(_LFS_MAGIC):
        raise ModelFileError(
            f"model file {path} ({size} bytes) is a Git LFS pointer{_lfs_real_size(head)}, not the model; "
            "fetch the real file (git lfs pull)"
        )
    if _is_text(head):
        first_line = head.decode("utf-8", errors="replace").strip().splitlines()[0][:60]
        raise ModelFileError(
            f"model file {path} ({size} bytes) holds text, not an ONNX model (it starts with {first_line!r}); "
            "a failed download often saves an HTML or JSON page under the model's name, re-export or re-download it"
        )
    if _mentions_external_data(path):
        check_external_data(path)
    return path


def check_external_data(path: Path) -> None:
    """Refuse external-data locations that resolve outside the model's folder, or are missing.

    Needs ``onnx`` to find which tensors use external data. Without it the check is left to
    onnxruntime, which refuses such paths itself from 1.24 on (its errors get the same message).
    """
    try:
        import onnx
    except ImportError:
        logger.debug("onnx is not installed: leaving the external-data checks of %s to onnxruntime", path)
        return
    folder = path.resolve().parent
    for tensor in _iter_tensors(_parse(path).graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = {entry.key: entry.value for entry in tensor.external_data}.get("location", "")
        target = (folder / location).resolve()
        if not location or not target.is_relative_to(folder):
            raise ModelFileError(_outside_message(path, tensor.name, f"'{location}'"))
        if not target.is_file():
            raise ModelFileError(_missing_message(path, tensor.name, location))


def check_graph_io(session: Any, path: Path) -> None:
    """Refuse a model that onnxruntime loaded but that has no graph input or output to run."""
    if not session.get_inputs() or not session.get_outputs():
        raise ModelFileError(
            f"model file {path} ({path.stat().st_size} bytes) holds no ONNX graph (no inputs or no outputs); "
            "it is truncated or not an ONNX model, re-export or re-download it"
        )


def describe_load_failure(path: Path, exc: BaseException) -> str:
    """One-line message for an onnxruntime failure to load the model file at ``path``."""
    size = path.stat().st_size if path.is_file() else 0
    text = " ".join(str(exc).split())
    # "[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model from /x.onnx failed:" repeats what we say
    reason = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : (Load model from .*? failed: ?)?", "", text)
    reason = reason.rstrip(". ") or type(exc).__name__
    if type(exc).__name__ == "InvalidProtobuf" or "INVALID_PROTOBUF" in text:
        return (
            f"model file {path} ({size} bytes) could not be read as an ONNX model (onnxruntime: {reason}); "
            "it is truncated or not an ONNX model, re-export or re-download it"
        )
    if external := _external_data_failure(path, reason):
        return external
    return (
        f"onnxruntime could not load model file {path} ({size} bytes) ({reason}); it is truncated, corrupt or "
        "not an ONNX model this onnxruntime supports (check its opset and operators), re-export or re-download it"
    )


def load_model_proto(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Check ``path`` and parse it with ``onnx`` (imported here) without loading external data.

    For graph edits only: running a model needs no ``onnx``. Raises ``ModelFileError`` like
    ``check_model_file``, and when the file is truncated or holds no graph.
    """
    path = check_model_file(path)
    model = _parse(path)
    # Arbitrary bytes sometimes parse as a message of unknown fields; a real export has a graph.
    if not model.graph.node or not model.graph.input:
        raise ModelFileError(
            f"model file {path} ({path.stat().st_size} bytes) holds no ONNX graph (no nodes or no inputs); "
            "it is truncated or not an ONNX model, re-export or re-download it"
        )
    return model


def _parse(path: Path) -> onnx.ModelProto:
    import onnx
    from google.protobuf.message import DecodeError

    try:
        return onnx.load(os.fspath(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ModelFileError(
            f"model file {path} ({path.stat().st_size} bytes) could not be read as an ONNX model ({reason}); "
            "it is truncated or not an ONNX model, re-export or re-download it"
        ) from exc


def _is_text(head: bytes) -> bool:
    """True when the head is printable UTF-8. A real export starts with the ir_version tag, byte 0x08."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut at the end of the head
            return False
        text = head[: exc.start].decode("utf-8")
    return bool(text.strip()) and all(char.isprintable() or char in _TEXT_CONTROLS for char in text)


def _mentions_external_data(path: Path) -> bool:
    """True when the file holds an external-data "location" entry (a chunked byte scan, no parsing)."""
    tail = b""
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            if _LOCATION_KEY in tail + chunk:
                return True
            tail = chunk[-len(_LOCATION_KEY) :]
    return False


def _external_data_failure(path: Path, reason: str) -> str:
    """Our external-data message from onnxruntime's (>= 1.24) refusal text, or "" for other failures."""
    match = re.search(r"External data path validation failed for initializer: (.+?)\. Error: (.*)", reason)
    if not match:
        return ""
    tensor, detail = match.groups()
    if missing := re.search(r'does not exist: "([^"]*)"', detail):
        target = Path(missing.group(1))
        folder = path.resolve().parent
        location = str(target.relative_to(folder)) if target.is_relative_to(folder) else str(target)
        return _missing_message(path, tensor, location)
    if "Absolute path" in detail:
        return _outside_message(path, tensor, "an absolute path")
    if "escapes" in detail:
        location = re.search(r'External data path: "([^"]*)"', detail)
        return _outside_message(path, tensor, f"'{location.group(1)}'" if location else "a path")
    return ""


def _outside_message(path: Path, tensor: str, location: str) -> str:
    folder = path.resolve().parent
    return (
        f"model file {path} ({path.stat().st_size} bytes) stores tensor '{tensor}' in external data "
        f"at {location}, outside the model's folder {folder}; refusing to read it, "
        "re-export the model as a single self-contained file"
    )


def _missing_message(path: Path, tensor: str, location: str) -> str:
    folder = path.resolve().parent
    return (
        f"model file {path} ({path.stat().st_size} bytes) needs external data file '{location}' for tensor "
        f"'{tensor}', which is missing from {folder}; copy it next to the model or re-export"
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


def _lfs_real_size(head: bytes) -> str:
    """' to a N-byte file' when the pointer states the real size, else ''."""
    match = re.search(rb"^size (\d+)", head, flags=re.MULTILINE)
    return f" to a {int(match.group(1))}-byte file" if match else ""
