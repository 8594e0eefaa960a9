"""A training run on disk: `checkpoint.pt` + `metrics.json` in one directory."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Callable

from toolkit.checkpoint import save_checkpoint
from toolkit.config import make_config
from toolkit.data import load_cifar10
from toolkit.errors import ToolkitError
from toolkit.fileio import write_json_atomic
from toolkit.train import Progress, TrainResult, train

log = logging.getLogger(__name__)

# What `toolkit report` and `toolkit plot` read from a run's metrics.json.
RUN_KEYS = ("model", "epochs_run", "train_loss", "train_accuracy", "val_accuracy", "test_accuracy", "history")


def train_run(model: str, out_dir: str | os.PathLike, *, data: str | os.PathLike | None = None,
              on_progress: Callable[[Progress], None] | None = None, **overrides: Any) -> TrainResult:
    """Train ``model`` with its recipe and ``overrides``; write the run's checkpoint and metrics."""
    config = make_config(model, **overrides)
    cifar = load_cifar10(data)
    result = train(config, cifar, on_progress=on_progress)
    out = Path(out_dir)
    save_checkpoint(out / "checkpoint.pt", result.model, name=model, model_args=_model_args(result),
                    input_size=result.input_size, mean=result.spec.mean, std=result.spec.std,
                    classes=cifar.classes, config=config.to_dict(), metrics=result.metrics)
    write_json_atomic(out / "metrics.json", {**result.metrics, "config": config.to_dict()})
    log.info("wrote %s", out)
    return result


def _model_args(result: TrainResult) -> dict[str, Any]:
    args = result.config.model_args()
    if result.config.model == "resnet18":
        args["freeze_backbone"] = False  # the weights are in the checkpoint; freezing was a training choice
    return args


def load_run(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The metrics.json of a run directory, with a clear error when it is not one."""
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        raise ToolkitError(f"{run_dir} is not a run directory: expected {path} written by 'toolkit train'")
    try:
        metrics = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ToolkitError(f"{path} is not valid JSON ({exc}); re-run 'toolkit train'") from None
    missing = [k for k in RUN_KEYS if k not in metrics] if isinstance(metrics, dict) else list(RUN_KEYS)
    if missing:
        raise ToolkitError(f"{path} lacks {', '.join(missing)}: expected the metrics.json of 'toolkit train'; "
                           "re-run it")
    return metrics


def load_export_report(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The export report of a run directory (``NAME.json``, written by ``toolkit export --onnx`` beside
    ``NAME.onnx``: ``model.json`` first, else the report of the one ONNX file there), or None when the run
    was not exported into its folder."""
    folder = Path(run_dir)
    candidates = [folder / "model.json"] + [p.with_suffix(".json") for p in sorted(folder.glob("*.onnx"))]
    found = [p for p in candidates if p.is_file()]
    if not found:
        return None
    path = found[0]
    try:
        report = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ToolkitError(f"{path} is not valid JSON ({exc}); re-run 'toolkit export --onnx'") from None
    if not isinstance(report, dict) or "max_abs_diff" not in report:
        raise ToolkitError(f"{path} is not an export report: expected the JSON 'toolkit export --onnx' writes; "
                           "re-run it")
    return report
