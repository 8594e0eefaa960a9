"""Table 4: training loss and train / validation / test accuracy per run, beside the study's own numbers."""
from __future__ import annotations

from typing import Any, Sequence

COLUMNS = ("run", "model", "setup", "epochs", "train loss", "train acc", "val acc", "test acc",
           "ONNX max diff", "ONNX top-1 agree", "BN folded/kept")

# The study's reported results (its Tables 2-4 and the transfer-learning section), per registry model.
STUDY_RESULTS: dict[str, dict[str, Any]] = {
    "task2": {"setup": "SGD 0.05, batch 64, early stopping", "train_accuracy": 0.8725, "val_accuracy": 0.7318,
              "test_accuracy": 0.7361},
    "net1": {"setup": "SGD 0.05 x0.1/4 epochs, early stopping", "train_loss": 0.2460, "train_accuracy": 0.9297,
             "val_accuracy": 0.7528, "test_accuracy": 0.7659},
    "net2": {"setup": "SGD 0.1 x0.25/4 epochs", "train_loss": 0.1484, "train_accuracy": 0.9590,
             "val_accuracy": 0.8111, "test_accuracy": 0.8193},
    "resnet18": {"setup": "ImageNet weights, 224x224, Adam 5e-5, batch 32", "test_accuracy": 0.8727},
}


def describe_setup(config: dict[str, Any]) -> str:
    """The choices that make a run what it is, in a few words (from the config in metrics.json)."""
    if not config:
        return "?"
    optimizer = {"sgd": "SGD", "adam": "Adam"}.get(config.get("optimizer"), "?")
    parts = [f"{optimizer} {_num(config.get('lr'))}"]
    if config.get("step_size"):
        parts[0] += f" x{_num(config.get('gamma'))}/{config['step_size']} epochs"
    parts.append(f"batch {config.get('batch_size', '?')}")
    if config.get("early_stopping"):
        parts.append("early stopping")
    if config.get("batchnorm") is False:
        parts.append("no BatchNorm")
    elif config.get("bn_before_relu"):
        parts.append("BN before ReLU")
    if config.get("augment"):
        parts.append("augmented")
    if config.get("model") == "resnet18":
        parts.append(f"weights {config.get('weights')}, {config.get('image_size')}x{config.get('image_size')}")
    for key in ("activation", "init"):
        if config.get(key) not in (None, "relu", "kaiming"):
            parts.append(f"{key} {config[key]}")
    for key in ("dropout", "weight_decay"):
        if config.get(key):
            parts.append(f"{key} {_num(config[key])}")
    return ", ".join(parts)


def report_rows(runs: Sequence[tuple[str, dict[str, Any]]], *, study: bool = False,
                exports: Sequence[dict[str, Any] | None] | None = None) -> list[tuple[str, ...]]:
    """One row of formatted numbers per (label, metrics.json content), with the run's export validation
    (``exports``: its model.json, or None when not exported); with ``study`` the study's row follows the
    first run of each model it reports on."""
    rows, shown = [], set()
    exports = list(exports) if exports is not None else [None] * len(runs)
    for (label, m), export in zip(runs, exports):
        rows.append((label, str(m.get("model", "?")), describe_setup(m.get("config", {})),
                     str(m.get("epochs_run", "?")), _fmt(m.get("train_loss")), _fmt(m.get("train_accuracy")),
                     _fmt(m.get("val_accuracy")), _fmt(m.get("test_accuracy")), *_export_cells(export)))
        name = m.get("model")
        if study and name in STUDY_RESULTS and name not in shown:
            shown.add(name)
            s = STUDY_RESULTS[name]
            rows.append((f"study: {name}", str(name), s["setup"], "", _fmt(s.get("train_loss")),
                         _fmt(s.get("train_accuracy")), _fmt(s.get("val_accuracy")), _fmt(s.get("test_accuracy")),
                         "", "", ""))
    return rows


def _export_cells(export: dict[str, Any] | None) -> tuple[str, str, str]:
    """Max logit difference, top-1 agreement and BatchNorms folded/kept of an export report."""
    if export is None:
        return "-", "-", "-"
    diff = export.get("max_abs_diff")
    agree = export.get("top1_agreement")
    verdict = "" if export.get("passed", True) else " FAIL"
    return (f"{diff:.1e}{verdict}" if isinstance(diff, (int, float)) else "?",
            f"{agree:.4f}" if isinstance(agree, (int, float)) else "?",
            f"{export.get('batchnorm_folded', '?')}/{export.get('batchnorm_kept', '?')}")


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else "?"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def to_markdown(rows: Sequence[Sequence[str]], columns: Sequence[str] = COLUMNS) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"
