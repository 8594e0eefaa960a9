"""Figures: training curves of runs (Figures 1-3) and activation maps (Figures 5-6). matplotlib, Agg."""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from toolkit.fileio import write_atomic


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | os.PathLike, dpi: int = 110) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    _pyplot().close(fig)
    return write_atomic(path, lambda f: f.write(buf.getvalue()))


def plot_training(runs: Sequence[tuple[str, dict[str, Any]]], path: str | os.PathLike,
                  title: str | None = None) -> Path:
    """Loss (train and validation, left) and validation accuracy (right) per epoch, one colour per run."""
    plt = _pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (label, metrics) in enumerate(runs):
        hist = metrics["history"]
        epochs = [h["epoch"] for h in hist]
        colour = f"C{i}"
        ax_loss.plot(epochs, [h["train_loss"] for h in hist], "-o", ms=3, color=colour, label=f"{label} train")
        ax_loss.plot(epochs, [h["val_loss"] for h in hist], "--s", ms=3, color=colour, label=f"{label} validation")
        ax_acc.plot(epochs, [h["val_accuracy"] for h in hist], "-o", ms=3, color=colour, label=f"{label} validation")
        kept_epoch = kept_weights_epoch(metrics)
        kept = [h for h in hist if h["epoch"] == kept_epoch]
        if kept and kept_epoch != epochs[-1]:  # early stopping went back to these weights: show which epoch
            ax_acc.plot([kept_epoch], [kept[0]["val_accuracy"]], "*", ms=11, color=colour,
                        label=f"{label} weights kept")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="Training and validation loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Validation accuracy")
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def kept_weights_epoch(metrics: dict[str, Any]) -> int:
    """The epoch whose weights a run kept: ``kept_epoch``; for a metrics.json written before that key, the
    best epoch when the run early-stopped (it restores the best weights), else its last epoch."""
    if "kept_epoch" in metrics:
        return int(metrics["kept_epoch"])
    early_stopping = metrics.get("config", {}).get("early_stopping", True)
    return int(metrics["best_epoch"]) if early_stopping and "best_epoch" in metrics else len(metrics["history"])


def plot_activations(activations: np.ndarray, filters: Sequence[int], path: str | os.PathLike, *,
                     weights: np.ndarray | None = None, title: str = "") -> Path:
    """Activation maps (C, H, W) of the chosen filters; with ``weights`` (C, Cin, k, k) above them (Figure 5)."""
    plt = _pyplot()
    n = len(filters)
    if weights is not None:
        fig, axes = plt.subplots(2, n, figsize=(2.2 * n, 4.6), squeeze=False)
        for j, f in enumerate(filters):
            w = weights[f]
            w = np.transpose(w, (1, 2, 0)) if w.shape[0] == 3 else w.mean(0)
            w = (w - w.min()) / (np.ptp(w) or 1.0)  # filters shown min-max scaled
            axes[0, j].imshow(w, cmap=None if w.ndim == 3 else "gray", interpolation="nearest")
            axes[0, j].set_title(f"filter {f}", fontsize=9)
            axes[1, j].imshow(activations[f], cmap="viridis")
            axes[1, j].set_title(f"activation {f}", fontsize=9)
    else:
        cols = min(n, 5)
        rows = -(-n // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.3 * rows), squeeze=False)
        for j, f in enumerate(filters):
            ax = axes[j // cols, j % cols]
            ax.imshow(activations[f], cmap="viridis")
            ax.set_title(f"filter {f}", fontsize=9)
    for ax in fig.axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)
