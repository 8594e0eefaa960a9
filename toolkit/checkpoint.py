"""Self-describing checkpoints: the facts needed to rebuild, export and run a model sit beside its weights."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from toolkit import __version__
from toolkit.errors import CheckpointError, first_line
from toolkit.fileio import write_atomic
from toolkit.models import get_model_spec

FORMAT_VERSION = 1
_REQUIRED = ("format_version", "model", "model_args", "input_size", "mean", "std", "classes", "state_dict")


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the rebuilt model (eval mode) and its description."""

    model: nn.Module
    name: str
    model_args: dict[str, Any]
    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    config: dict[str, Any]
    metrics: dict[str, Any]
    toolkit_version: str

    def export_metadata(self) -> dict[str, Any]:
        """The facts the ONNX file must carry so the runtime needs no torch."""
        return {"model": self.name, "mean": list(self.mean),
                "std": list(self.std), "classes": list(self.classes),
                "version": self.toolkit_version}


def save_checkpoint(path: str | os.PathLike, model: nn.Module, *, name: str, model_args: dict[str, Any],
                    input_size: tuple[int, int, int], mean: tuple[float, ...], std: tuple[float, ...],
                    classes: tuple[str, ...], config: dict[str, Any], metrics: dict[str, Any]) -> Path:
    """Write a checkpoint atomically; it loads with ``torch.load(weights_only=True)``."""
    payload = {
        "format_version": FORMAT_VERSION, "model": name, "model_args": dict(model_args),
        "input_size": list(input_size), "mean": list(mean), "std": list(std), "classes": list(classes),
        "config": dict(config), "metrics": _plain(metrics), "toolkit_version": __version__,
        "state_dict": model.state_dict(),
    }
    return write_atomic(path, lambda f: torch.save(payload, f))


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` and rebuild its model in eval mode."""
    path = Path(path)
    if path.is_dir():
        inside = path / "checkpoint.pt"
        hint = f"pass {inside}" if inside.is_file() else "pass the checkpoint.pt that 'toolkit train' wrote"
        raise CheckpointError(f"checkpoint {path} is a directory, not a file: {hint}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist: expected a checkpoint.pt written by 'toolkit train'")
    size = path.stat().st_size
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a file that is not a checkpoint
        hint = ("it looks like an exported ONNX model: pass the checkpoint.pt it was exported from"
                if path.suffix.lower() == ".onnx" else "expected a checkpoint.pt written by 'toolkit train'")
        raise CheckpointError(f"{path} ({size} bytes) is not a toolkit checkpoint ({_why_unreadable(path, exc)}); "
                              f"{hint}") from None
    if not isinstance(payload, dict) or any(k not in payload for k in _REQUIRED):
        missing = [k for k in _REQUIRED if not isinstance(payload, dict) or k not in payload]
        raise CheckpointError(f"{path} is not a toolkit checkpoint: missing {', '.join(missing)}; "
                              "expected a checkpoint.pt written by 'toolkit train'")
    if payload["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {payload['format_version']}, this toolkit "
                              f"reads version {FORMAT_VERSION}: re-train or use the toolkit version that wrote it "
                              f"({payload.get('toolkit_version', 'unknown')})")
    model = rebuild_model(payload["model"], payload["model_args"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit model {payload['model']!r}: {first_line(exc)}") from None
    model.eval()
    return Checkpoint(model, payload["model"], payload["model_args"], tuple(payload["input_size"]),
                      tuple(payload["mean"]), tuple(payload["std"]), tuple(payload["classes"]),
                      payload.get("config", {}), payload.get("metrics", {}),
                      payload.get("toolkit_version", "unknown"))


def rebuild_model(name: str, model_args: dict[str, Any]) -> nn.Module:
    """Build the registry model ``name`` with ``model_args``, without pretrained weights."""
    return get_model_spec(name).build(**model_args)


def _plain(value: Any) -> Any:
    """Metrics reduced to what weights_only loading accepts (dict, list, str, int, float, bool, None)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return float(value)


def load_model(path: str | os.PathLike) -> nn.Module:
    """Just the model of a checkpoint, in eval mode (the torch loader of the benchmark memory probe)."""
    return load_checkpoint(path).model


def _why_unreadable(path: Path, exc: BaseException) -> str:
    """Why torch.load refused ``path``: a file that is not torch.save's zip archive is named by its first bytes
    (torch's own error is then a bare pickle opcode like ``KeyError: '101'``); otherwise torch's first sentence."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    if not head:
        return "the file is empty"
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # torch.save's zip archive, or its legacy raw pickle
        return f"it starts with {head!r}, not the zip header torch.save writes"
    return f"torch.load: {_first_sentence(exc)}"


def _first_sentence(exc: BaseException) -> str:
    """The first sentence of an error from torch.load, whose weights_only messages run to paragraphs."""
    text = first_line(exc)
    return text.split(". ")[0].rstrip(".")[:160]
