"""The ``toolkit.*`` metadata_props an export writes (see the contract in docs/ARCHITECTURE.md)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from exporters.errors import ExportError

__all__ = ["REQUIRED_KEYS", "check_metadata", "build_metadata"]

PREFIX = "toolkit."
REQUIRED_KEYS = ("model", "mean", "std", "classes", "version")
_WRITTEN_BY_EXPORT = ("input_size", "layers", "export")


def check_metadata(metadata: object, input_size: tuple[int, int, int], num_classes: int) -> None:
    """Raise ``ExportError`` unless ``metadata`` has the contract's keys with values fitting the model."""
    if not isinstance(metadata, Mapping):
        raise ExportError(f"expected metadata as a dict with keys {list(REQUIRED_KEYS)}, got {type(metadata).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in metadata]
    reserved = [k for k in metadata if k in _WRITTEN_BY_EXPORT or str(k).startswith(PREFIX)]
    if missing or reserved:
        raise ExportError(
            f"expected metadata keys {list(REQUIRED_KEYS)} without the {PREFIX!r} prefix and without "
            f"{list(_WRITTEN_BY_EXPORT)} (export writes those), got {sorted(map(str, metadata))}"
        )
    for key in ("model", "version"):
        if not isinstance(metadata[key], str) or not metadata[key]:
            raise ExportError(f"expected metadata[{key!r}] a non-empty str, got {metadata[key]!r}")
    for key in ("mean", "std"):
        _check_per_channel(key, metadata[key], input_size[0])
    classes = metadata["classes"]
    if not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) for c in classes):
        raise ExportError(f"expected metadata['classes'] a list of str, got {classes!r}")
    if len(classes) != num_classes:
        raise ExportError(
            f"metadata['classes'] has {len(classes)} names but the model outputs {num_classes} logits; "
            "pass one class name per output"
        )


def build_metadata(
    metadata: Mapping[str, object],
    input_size: tuple[int, int, int],
    layers: dict[str, str],
    export_info: dict[str, object],
) -> dict[str, object]:
    """``toolkit.*`` key -> value for every property the file carries."""
    props: dict[str, object] = {PREFIX + str(k): _plain(v) for k, v in metadata.items()}
    props[PREFIX + "input_size"] = list(input_size)
    props[PREFIX + "layers"] = layers
    props[PREFIX + "export"] = export_info
    return props


def _check_per_channel(key: str, values: object, channels: int) -> None:
    numbers = list(values) if isinstance(values, (list, tuple)) else []
    ok = (
        len(numbers) == channels
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in numbers)
        and (key != "std" or all(v > 0 for v in numbers))
    )
    if not ok:
        kind = "positive numbers" if key == "std" else "finite numbers"
        raise ExportError(f"expected metadata[{key!r}] a list of {channels} {kind} (one per channel), got {values!r}")


def _plain(value: object) -> object:
    """Tuples become lists so JSON encodes them the same way."""
    return list(value) if isinstance(value, tuple) else value
