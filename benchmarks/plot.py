"""Latency and throughput against batch size for every engine of a record, as a PNG."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from benchmarks.record import BenchResult, check_record
from runtime._fileio import write_atomic

__all__ = ["plot_record", "draw_record"]


def _title(record: dict[str, Any]) -> str:
    env = record["environment"]
    versions = env.get("versions", {})
    ort = versions.get("onnxruntime") or versions.get("onnxruntime-gpu")
    return (
        f"{record['model'].get('name', 'model')} on {env.get('gpu') or env.get('cpu_model', '?')} "
        f"({record['threads']} threads, {record['provider_requested']})\n"
        f"torch {versions.get('torch')}, onnxruntime {ort}, Python {env.get('python')}"
    )


def plot_record(record: dict[str, Any] | BenchResult, path: str | os.PathLike[str]) -> Path:
    """Draw the record (see ``draw_record``) and write it as a PNG, atomically."""
    figure = draw_record(record)
    return write_atomic(path, lambda f: figure.savefig(f, format="png", dpi=110))


def draw_record(record: dict[str, Any] | BenchResult) -> Figure:
    """p50 latency (with p90 whiskers; log-log) and throughput (log x) per engine against batch size, titled
    with the machine and the versions.

    Uses the Agg canvas directly so the global matplotlib backend is never changed.
    """
    data = check_record(record.to_dict() if isinstance(record, BenchResult) else record)
    figure = Figure(figsize=(11, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    latency_ax, throughput_ax = figure.subplots(1, 2)
    for engine, per_batch in data["latency_ms"].items():
        batches = sorted(per_batch, key=int)
        sizes = [int(b) for b in batches]
        p50 = [per_batch[b]["p50"] for b in batches]
        p90 = [per_batch[b]["p90"] for b in batches]
        latency_ax.errorbar(sizes, p50, yerr=[[0.0] * len(p50), [hi - lo for hi, lo in zip(p90, p50)]],
                            marker="o", capsize=3, label=engine)
        ips = data["throughput_ips"][engine]
        throughput_ax.plot(sizes, [ips[b] for b in batches], marker="o", label=engine)
    latency_ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="latency p50 (ms), whisker p90",
                   title="latency per batch")
    throughput_ax.set(xscale="log", xlabel="batch size", ylabel="throughput (images/s)", title="throughput")
    sizes = sorted({int(b) for per_batch in data["latency_ms"].values() for b in per_batch})
    for ax in (latency_ax, throughput_ax):
        ax.set_xticks(sizes, [str(s) for s in sizes])  # the measured batch sizes, not powers of ten
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    figure.suptitle(_title(data), fontsize=9)
    return figure
