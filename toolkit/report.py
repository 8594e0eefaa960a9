"""Table 4: training loss and train / validation / test accuracy per run, as rows and as Markdown."""
from __future__ import annotations

from typing import Any, Sequence

COLUMNS = ("run", "model", "epochs", "train loss", "train acc", "val acc", "test acc")


def report_rows(runs: Sequence[tuple[str, dict[str, Any]]]) -> list[tuple[str, ...]]:
    """One row of formatted numbers per (label, metrics.json content)."""
    rows = []
    for label, m in runs:
        rows.append((label, str(m.get("model", "?")), str(m.get("epochs_run", "?")),
                     f"{m['train_loss']:.4f}", f"{m['train_accuracy']:.4f}",
                     f"{m['val_accuracy']:.4f}", f"{m['test_accuracy']:.4f}"))
    return rows


def to_markdown(rows: Sequence[Sequence[str]], columns: Sequence[str] = COLUMNS) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"
