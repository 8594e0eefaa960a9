"""``BenchResult``: everything one benchmark measured, as plain data and as one versioned JSON record."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.errors import RecordError
from benchmarks.peak import PeakProbe
from benchmarks.stats import LatencyStats
from runtime._fileio import write_atomic

__all__ = ["SCHEMA_VERSION", "REQUIRED_KEYS", "BenchResult", "write_record", "read_record", "check_record"]

SCHEMA_VERSION = 1
REQUIRED_KEYS = (
    "schema_version", "provider_requested", "providers_active", "accuracy", "latency_ms", "throughput_ips",
    "first_run_ms", "session_create_ms", "memory_mb", "macs_per_image", "gflops", "peak_probe",
    "fraction_of_peak", "runtime_overhead_pct", "pipeline", "threads", "settings", "environment", "model",
    "command_line", "created",
)


@dataclass
class BenchResult:
    """One benchmark run. Latency is keyed by engine ("torch", "onnx", on CUDA also "onnx_iobinding")
    then batch size; throughput, GFLOP/s and fraction of peak are derived from it on demand."""

    provider_requested: str
    providers_active: list[str]
    accuracy: dict[str, float]
    latency: dict[str, dict[int, LatencyStats]]
    first_run_ms: dict[str, float]
    session_create_ms: float
    memory_mb: dict[str, float | None]
    macs_per_image: int
    peak_probe: PeakProbe
    runtime_overhead_pct: dict[int, float]
    pipeline: dict[str, Any]
    threads: int
    settings: dict[str, Any]
    environment: dict[str, Any]
    model: dict[str, Any]
    command_line: str
    created: str
    extra: dict[str, Any] = field(default_factory=dict)  # protocol, overhead details, probe details, MAC breakdown

    def throughput_ips(self) -> dict[str, dict[int, float]]:
        """Images per second per engine and batch size (batch / mean latency)."""
        return {e: {b: s.throughput(b) for b, s in per.items()} for e, per in self.latency.items()}

    def gflops(self) -> dict[str, dict[int, float]]:
        """Achieved GFLOP/s: 2 FLOPs per MAC * MACs per image * images/s / 1e9."""
        return {e: {b: 2.0 * self.macs_per_image * ips / 1e9 for b, ips in per.items()}
                for e, per in self.throughput_ips().items()}

    def fraction_of_peak(self) -> dict[str, dict[int, float]]:
        """Achieved GFLOP/s divided by the matmul probe's GFLOP/s (0..1, rarely near 1 for small CNNs)."""
        peak = self.peak_probe.gflops
        return {e: {b: g / peak if peak > 0 else math.nan for b, g in per.items()} for e, per in self.gflops().items()}

    def to_dict(self) -> dict[str, Any]:
        """The versioned JSON record: batch sizes become string keys, NaN and infinity become null."""
        record = {
            "schema_version": SCHEMA_VERSION,
            "provider_requested": self.provider_requested,
            "providers_active": list(self.providers_active),
            "accuracy": dict(self.accuracy),
            "latency_ms": {e: {str(b): s.to_dict() for b, s in per.items()} for e, per in self.latency.items()},
            "throughput_ips": _string_keys(self.throughput_ips()),
            "first_run_ms": dict(self.first_run_ms),
            "session_create_ms": self.session_create_ms,
            "memory_mb": dict(self.memory_mb),
            "macs_per_image": self.macs_per_image,
            "gflops": _string_keys(self.gflops()),
            "peak_probe": self.peak_probe.to_dict(),
            "fraction_of_peak": _string_keys(self.fraction_of_peak()),
            "runtime_overhead_pct": {str(b): v for b, v in self.runtime_overhead_pct.items()},
            "pipeline": dict(self.pipeline),
            "threads": self.threads,
            "settings": self.settings,
            "environment": self.environment,
            "model": self.model,
            "command_line": self.command_line,
            "created": self.created,
            **self.extra,
        }
        return _finite(record)

    def rows(self) -> list[dict[str, str]]:
        """The latency table, one row per engine and batch size, values formatted for display."""
        ips, gflops, fraction = self.throughput_ips(), self.gflops(), self.fraction_of_peak()
        return [
            {"engine": engine, "batch": str(b), "p50 ms": f"{s.p50:.3f}", "p90 ms": f"{s.p90:.3f}",
             "p99 ms": f"{s.p99:.3f}", "mean ms": f"{s.mean:.3f}", "std ms": f"{s.std:.3f}", "runs": str(s.runs),
             "images/s": f"{ips[engine][b]:.1f}", "GFLOP/s": f"{gflops[engine][b]:.2f}",
             "% of peak": f"{100 * fraction[engine][b]:.1f}"}
            for engine, per in self.latency.items() for b, s in per.items()
        ]

    def summary_rows(self) -> list[tuple[str, str]]:
        """(label, value) pairs for everything outside the latency table."""
        acc, peak = self.accuracy, self.peak_probe
        return [
            ("providers", f"requested {self.provider_requested}, active {', '.join(self.providers_active)}"),
            ("accuracy", f"torch {acc['torch']:.4f}, onnx {acc['onnx']:.4f}"),
            ("top-1 agreement", f"{acc['top1_agreement']:.4f} (max |logit diff| {acc['max_abs_logit_diff']:.2e})"),
            ("first run", ", ".join(f"{e} {v:.2f} ms" for e, v in self.first_run_ms.items())),
            ("session create", f"{self.session_create_ms:.1f} ms"),
            ("peak memory", self._memory_text()),
            ("MACs per image", f"{self.macs_per_image:,}"),
            ("fp32 peak probe", f"{peak.gflops:.1f} GFLOP/s ({peak.size}x{peak.size} matmul, {peak.threads} threads)"),
            ("runtime overhead", self._overhead_text()),
            ("pipeline", self._pipeline_text()),
            ("threads", str(self.threads)),
        ]

    def _memory_text(self) -> str:
        """Peak MB per scenario; the edge scenario names the photo it classified."""
        details = self.extra.get("memory_details", {})
        parts = []
        for scenario, value in self.memory_mb.items():
            image = (details.get(scenario) or {}).get("image")
            what = f" ({Path(image['path']).name if 'path' in image else 'synthetic image'})" if image else ""
            parts.append(f"{scenario} {_mb(value)}{what}")
        return ", ".join(parts)

    def _overhead_text(self) -> str:
        """Median per-round overhead with the interquartile range over rounds, per batch size."""
        details = self.extra.get("runtime_overhead", {})
        parts = []
        for batch, value in self.runtime_overhead_pct.items():
            spread = details.get(str(batch), {}).get("overhead_pct_spread")
            rounds = f" (rounds p25..p75 {spread['p25']:+.1f}..{spread['p75']:+.1f}%)" if spread else ""
            parts.append(f"batch {batch}: {value:+.1f}%{rounds}")
        return ", ".join(parts)

    def _pipeline_text(self) -> str:
        pipe = self.pipeline
        spread = pipe.get("ratio_spread")
        rounds = f", {pipe['rounds']} rounds p25..p75 {spread['p25']:.2f}..{spread['p75']:.2f}" if spread else ""
        return (f"{pipe['pipeline_ips']:.0f} images/s uint8->class vs {pipe['raw_ips']:.0f} raw float32 "
                f"(ratio {pipe['ratio']:.2f}{rounds})")


def _mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} MB"


def _string_keys(nested: dict[str, dict[int, float]]) -> dict[str, dict[str, float]]:
    return {e: {str(b): v for b, v in per.items()} for e, per in nested.items()}


def _finite(value: Any) -> Any:
    """Replace NaN and infinities with None so the record is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def check_record(record: Any) -> dict[str, Any]:
    """Return ``record`` if it is a benchmark record this code reads, else raise ``RecordError``."""
    if not isinstance(record, dict):
        raise RecordError(f"expected a benchmark record (JSON object), got {type(record).__name__}")
    if "schema_version" not in record:
        raise RecordError("expected a benchmark record written by 'toolkit bench --json', got a JSON object without "
                          "schema_version (keys: " + ", ".join(sorted(record)[:6]) + ")")
    if record.get("schema_version") != SCHEMA_VERSION:
        raise RecordError(
            f"benchmark record has schema_version {record.get('schema_version')!r}, this code reads "
            f"{SCHEMA_VERSION}; re-run the benchmark with this version"
        )
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise RecordError(f"benchmark record is missing {', '.join(missing)}; "
                          "expected a record written by 'toolkit bench --json'")
    return record


def write_record(path: str | os.PathLike[str], result: BenchResult | dict[str, Any]) -> Path:
    """Write the JSON record atomically (temporary file in the same directory, then ``os.replace``)."""
    target = Path(path)
    record = check_record(result.to_dict() if isinstance(result, BenchResult) else _finite(result))
    text = json.dumps(record, indent=2, allow_nan=False) + "\n"
    return write_atomic(target, lambda f: f.write(text.encode("utf-8")))


def read_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and check a record written by :func:`write_record`."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RecordError(
            f"cannot read benchmark record {path} ({exc}); expected a JSON record written by 'toolkit bench --json'"
        ) from exc
    try:
        return check_record(record)
    except RecordError as exc:
        raise RecordError(f"{path}: {exc}") from None
