"""``ModelMetadata``: the ``toolkit.*`` metadata_props an export writes into the ONNX file.

Read from a loaded onnxruntime session (``get_modelmeta``, ``get_inputs``, ``get_outputs``), so no
``onnx`` package is needed. Missing properties fall back to what the graph itself says (input shape,
number of classes) so that models exported by other tools still open; each fallback is recorded in
``ModelMetadata.fallbacks``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import onnxruntime as ort

from runtime.errors import ModelFileError
from runtime.modelfile import check_graph_io, check_model_file
from runtime.providers import create_session

__all__ = ["ModelMetadata", "load_metadata", "read_metadata", "session_input_dims"]

logger = logging.getLogger(__name__)

_PREFIX = "toolkit."


@dataclass(frozen=True)
class ModelMetadata:
    """Facts about an exported model that the runtime needs without torch.

    ``input_size`` is (C, H, W) or None when neither the metadata nor the graph fixes it; ``mean`` and
    ``std`` apply per channel to pixels scaled to 0..1; ``layers`` maps torch module paths to graph
    tensor names; ``fallbacks`` names the properties that were missing and derived instead.
    """

    model: str
    input_size: tuple[int, int, int] | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    layers: dict[str, str] = field(default_factory=dict)
    export: dict[str, Any] = field(default_factory=dict)
    version: str = ""
    fallbacks: tuple[str, ...] = ()

    @property
    def normalized(self) -> bool:
        """True when the export recorded a normalization, so inputs are expected to be normalized."""
        return "mean" not in self.fallbacks and "std" not in self.fallbacks


def load_metadata(path: str | os.PathLike[str]) -> ModelMetadata:
    """Read the ``toolkit.*`` metadata of the ONNX file at ``path`` (checks the file first).

    Opens a CPU session without graph optimizations: that is how onnxruntime exposes the metadata.
    """
    path = check_model_file(path)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = create_session(os.fspath(path), options, "cpu", path)
    check_graph_io(session, path)
    return read_metadata(session)


def read_metadata(session: ort.InferenceSession) -> ModelMetadata:
    """Parse ``toolkit.*`` metadata_props of a loaded model, deriving missing values from its graph."""
    meta = session.get_modelmeta()
    props = {k[len(_PREFIX) :]: v for k, v in meta.custom_metadata_map.items() if k.startswith(_PREFIX)}
    values = {key: _parse_json(key, text) for key, text in props.items() if key not in {"version", "model"}}
    fallbacks: list[str] = []

    input_size = _input_size(values.get("input_size"), session_input_dims(session))
    if "input_size" not in values:
        fallbacks.append("input_size")
    channels = input_size[0] if input_size else 3
    mean = _per_channel("mean", values.get("mean"), channels, 0.0, fallbacks)
    std = _per_channel("std", values.get("std"), channels, 1.0, fallbacks)
    if any(s == 0 for s in std):
        raise ModelFileError(f"metadata toolkit.std is {list(std)}: expected non-zero values; re-export the model")
    if "mean" in fallbacks or "std" in fallbacks:
        logger.warning(
            "model %r has no toolkit.mean/toolkit.std metadata: using mean 0 and std 1 (pixels scaled to 0..1)",
            meta.graph_name,
        )
    classes = values.get("classes")
    if classes is None:
        fallbacks.append("classes")
        classes = [str(i) for i in range(_num_classes(session))]
    for key in ("layers", "export"):
        if key not in values:
            fallbacks.append(key)
    return ModelMetadata(
        model=_plain(props.get("model", "")) or meta.graph_name or "unknown",
        input_size=input_size,
        mean=mean,
        std=std,
        classes=tuple(str(c) for c in classes),
        layers={str(k): str(v) for k, v in _mapping("layers", values.get("layers", {})).items()},
        export=dict(_mapping("export", values.get("export", {}))),
        version=_plain(props.get("version", "")),
        fallbacks=tuple(fallbacks + [k for k in ("model", "version") if k not in props]),
    )


def session_input_dims(session: ort.InferenceSession) -> list[int | None]:
    """Dims of the first graph input; None for symbolic or unknown dims."""
    return [_fixed(d) for d in session.get_inputs()[0].shape]


def _parse_json(key: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelFileError(
            f"metadata toolkit.{key} is not valid JSON ({exc.msg}): got {text[:60]!r}; re-export the model"
        ) from exc


def _plain(text: str) -> str:
    """A plain-string property; tolerate an exporter that JSON-encoded it (``'"task2"'``)."""
    if text.startswith('"'):
        try:
            decoded = json.loads(text)
        except json.JSONDecodeError:
            return text
        return decoded if isinstance(decoded, str) else text
    return text


def _input_size(value: Any, dims: list[int | None]) -> tuple[int, int, int] | None:
    if value is not None:
        if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, int) and v > 0 for v in value)):
            raise ModelFileError(f"metadata toolkit.input_size is {value!r}: expected [C, H, W] positive ints")
        return (value[0], value[1], value[2])
    if len(dims) == 4 and all(d is not None for d in dims[1:]):
        return (int(dims[1]), int(dims[2]), int(dims[3]))  # type: ignore[arg-type]
    return None


def _per_channel(key: str, value: Any, channels: int, default: float, fallbacks: list[str]) -> tuple[float, ...]:
    if value is None:
        fallbacks.append(key)
        return (default,) * channels
    numbers = isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    if not numbers or len(value) not in (1, channels):
        raise ModelFileError(
            f"metadata toolkit.{key} is {value!r}: expected a list of {channels} numbers (one per channel)"
        )
    values = tuple(float(v) for v in value)
    return values * channels if len(values) == 1 else values


def _num_classes(session: ort.InferenceSession) -> int:
    """Last dim of the first graph output when it is fixed, else 0."""
    outputs = session.get_outputs()
    dims = outputs[0].shape if outputs else []
    return (_fixed(dims[-1]) or 0) if dims else 0


def _fixed(dim: object) -> int | None:
    """A dim as onnxruntime reports it (int, symbolic str or None) -> positive int or None."""
    return dim if isinstance(dim, int) and not isinstance(dim, bool) and dim > 0 else None


def _mapping(key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ModelFileError(f"metadata toolkit.{key} is {type(value).__name__}: expected a JSON object")
    return value
