"""Side-by-side comparison of two benchmark records (e.g. two machines, two versions, before/after)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from benchmarks.record import check_record

__all__ = ["ComparisonRow", "COMPARED_SECTIONS", "compare_records", "format_comparison"]

# Numeric sections worth comparing; settings and environment are context, not metrics.
COMPARED_SECTIONS = (
    "accuracy", "latency_ms", "throughput_ips", "first_run_ms", "session_create_ms", "memory_mb",
    "macs_per_image", "gflops", "peak_probe", "fraction_of_peak", "runtime_overhead_pct", "pipeline",
)


class ComparisonRow(NamedTuple):
    """One metric in both records; ``ratio`` is b / a (None when either is missing or a is 0)."""

    metric: str
    a: float | None
    b: float | None
    ratio: float | None


def _flatten(value: Any, prefix: str, out: dict[str, float | None]) -> None:
    """Dotted metric name -> number for every numeric leaf (bools and strings are skipped)."""
    if isinstance(value, dict):
        for key, child in value.items():
            _flatten(child, f"{prefix}.{key}", out)
    elif value is None:
        out[prefix] = None  # a metric the run could not measure (e.g. a failed memory probe)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        out[prefix] = float(value)


def _metrics(record: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for section in COMPARED_SECTIONS:
        _flatten(record.get(section), section, out)
    return out


def compare_records(a: dict[str, Any], b: dict[str, Any]) -> list[ComparisonRow]:
    """Every numeric metric of either record, in record order, with ratio b / a."""
    left, right = _metrics(check_record(a)), _metrics(check_record(b))
    rows = []
    for metric in [*left, *(m for m in right if m not in left)]:
        x, y = left.get(metric), right.get(metric)
        ratio = y / x if x is not None and y is not None and x != 0 else None
        rows.append(ComparisonRow(metric, x, y, ratio))
    return rows


def _cell(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.3e}"


def format_comparison(rows: Sequence[ComparisonRow], *, a_label: str = "a", b_label: str = "b") -> str:
    """The comparison as aligned plain text columns: metric, a, b, b/a."""
    table = [("metric", a_label, b_label, f"{b_label}/{a_label}")]
    table += [(r.metric, _cell(r.a), _cell(r.b), "-" if r.ratio is None else f"{r.ratio:.3f}") for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    lines = [
        "  ".join([row[0].ljust(widths[0]), *(cell.rjust(w) for cell, w in zip(row[1:], widths[1:]))])
        for row in table
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
