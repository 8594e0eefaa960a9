"""Several benchmark records as two tables: latency per model and batch size, and one row of facts per record."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchmarks.record import check_record

__all__ = ["LATENCY_COLUMNS", "FACT_COLUMNS", "latency_rows", "fact_rows", "to_markdown"]

LATENCY_COLUMNS = ("record", "batch", "torch p50 ms", "onnx p50 ms", "onnx p90 ms", "onnx speed-up",
                   "onnx images/s", "onnx GFLOP/s", "onnx % of peak")
FACT_COLUMNS = ("record", "model", "MACs/image", "torch acc", "onnx acc", "top-1 agree", "peak MB torch",
                "peak MB onnx", "peak MB edge", "overhead b1", "overhead b64", "pipeline ratio", "matmul GFLOP/s")


def latency_rows(records: Sequence[tuple[str, dict[str, Any]]]) -> list[tuple[str, ...]]:
    """One row per record and batch size: torch vs onnxruntime latency, onnxruntime throughput and efficiency."""
    rows = []
    for label, record in records:
        check_record(record)
        torch, onnx = record["latency_ms"].get("torch", {}), record["latency_ms"].get("onnx", {})
        for batch, o in onnx.items():
            t = torch.get(batch, {})
            speedup = t["p50"] / o["p50"] if t.get("p50") and o.get("p50") else None
            rows.append((label, str(batch), _num(t.get("p50"), ".3f"), _num(o.get("p50"), ".3f"),
                         _num(o.get("p90"), ".3f"), _num(speedup, ".2f", "x"),
                         _num(_get(record, "throughput_ips", "onnx", batch), ".0f"),
                         _num(_get(record, "gflops", "onnx", batch), ".1f"),
                         _num(_pct(_get(record, "fraction_of_peak", "onnx", batch)), ".0f", "%")))
    return rows


def fact_rows(records: Sequence[tuple[str, dict[str, Any]]]) -> list[tuple[str, ...]]:
    """One row per record: accuracy on the test set, peak memory per scenario, runtime overhead, pipeline."""
    rows = []
    for label, record in records:
        check_record(record)
        acc, memory, overhead = record["accuracy"], record["memory_mb"] or {}, record["runtime_overhead_pct"] or {}
        rows.append((label, str(record["model"].get("name", "?")), f"{record['macs_per_image']:,}",
                     _num(acc.get("torch"), ".4f"), _num(acc.get("onnx"), ".4f"), _num(acc.get("top1_agreement"), ".4f"),
                     _num(memory.get("torch"), ".0f"), _num(memory.get("onnx"), ".0f"),
                     _num(memory.get("runtime_edge"), ".0f"), _num(overhead.get("1"), "+.1f", "%"),
                     _num(overhead.get("64"), "+.1f", "%"), _num(_get(record, "pipeline", "ratio"), ".2f"),
                     _num(_get(record, "peak_probe", "gflops"), ".0f")))
    return rows


def to_markdown(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def _get(record: dict[str, Any], *keys: str) -> Any:
    value: Any = record
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _pct(fraction: float | None) -> float | None:
    return None if fraction is None else 100 * fraction


def _num(value: Any, spec: str, suffix: str = "") -> str:
    return "-" if not isinstance(value, (int, float)) else f"{value:{spec}}{suffix}"
