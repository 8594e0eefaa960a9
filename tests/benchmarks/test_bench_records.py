"""The JSON record: atomic writing, reading back, comparison arithmetic and the plot."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest

from bench_models import BenchRun

from benchmarks import RecordError, compare_records, format_comparison, plot_record, read_record, write_record
from benchmarks.compare import ComparisonRow


@pytest.fixture
def record(bench_run: BenchRun) -> dict[str, Any]:
    """A fresh copy of the shared run's record, safe to modify."""
    return copy.deepcopy(bench_run.result.to_dict())


def test_write_record_round_trips_and_leaves_no_temporary_file(
    bench_run: BenchRun, tmp_path: Path
) -> None:
    target = write_record(tmp_path / "runs" / "bench.json", bench_run.result)
    assert read_record(target) == json.loads(json.dumps(bench_run.result.to_dict()))
    assert [p.name for p in target.parent.iterdir()] == ["bench.json"]


def test_write_record_turns_nan_into_null(record: dict[str, Any], tmp_path: Path) -> None:
    record["runtime_overhead_pct"]["1"] = math.nan
    target = write_record(tmp_path / "bench.json", record)
    assert '"1": null' in target.read_text()
    assert read_record(target)["runtime_overhead_pct"]["1"] is None


def test_write_record_refuses_an_incomplete_record_and_keeps_the_old_file(record: dict[str, Any],
                                                                          tmp_path: Path) -> None:
    target = tmp_path / "bench.json"
    write_record(target, record)
    before = target.read_text()
    del record["latency_ms"], record["memory_mb"]
    with pytest.raises(RecordError, match="missing latency_ms, memory_mb"):
        write_record(target, record)
    assert target.read_text() == before


def test_read_record_rejects_another_schema_version(record: dict[str, Any], tmp_path: Path) -> None:
    record["schema_version"] = 99
    (tmp_path / "old.json").write_text(json.dumps(record))
    with pytest.raises(RecordError, match="schema_version 99, this code reads 1"):
        read_record(tmp_path / "old.json")


def test_compare_arithmetic(record: dict[str, Any]) -> None:
    other = copy.deepcopy(record)
    other["latency_ms"]["onnx"]["4"]["p50"] = record["latency_ms"]["onnx"]["4"]["p50"] * 2
    other["memory_mb"]["onnx"] = 300.0
    record["memory_mb"]["onnx"] = 120.0
    record["runtime_overhead_pct"]["1"] = 0.0
    other["runtime_overhead_pct"]["1"] = 5.0
    rows = {row.metric: row for row in compare_records(record, other)}
    assert rows["latency_ms.onnx.4.p50"].ratio == pytest.approx(2.0)
    assert rows["memory_mb.onnx"] == ComparisonRow("memory_mb.onnx", 120.0, 300.0, 2.5)
    assert rows["runtime_overhead_pct.1"].ratio is None  # b / 0 is undefined, not infinite
    assert rows["memory_mb.torch"] == ComparisonRow("memory_mb.torch", None, None, None)  # not measured
    assert rows["accuracy.torch"].ratio == pytest.approx(1.0)
    assert "settings.torch.intra_op_threads" not in rows  # settings are context, not metrics


def test_compare_keeps_metrics_present_in_only_one_record(record: dict[str, Any]) -> None:
    other = copy.deepcopy(record)
    other["latency_ms"]["onnx"]["256"] = {"p50": 3.0, "p90": 3.5, "p99": 4.0, "mean": 3.1, "std": 0.1, "runs": 5}
    del record["pipeline"]["ratio"]
    rows = {row.metric: row for row in compare_records(record, other)}
    assert rows["latency_ms.onnx.256.p50"] == ComparisonRow("latency_ms.onnx.256.p50", None, 3.0, None)
    assert rows["pipeline.ratio"].a is None and rows["pipeline.ratio"].ratio is None


def test_compare_rejects_a_non_record() -> None:
    with pytest.raises(RecordError, match="expected a benchmark record"):
        compare_records([], {})  # type: ignore[arg-type]


def test_format_comparison_aligns_columns() -> None:
    rows = [ComparisonRow("latency_ms.onnx.1.p50", 2.0, 1.0, 0.5), ComparisonRow("memory_mb.torch", None, 5.0, None)]
    text = format_comparison(rows, a_label="laptop", b_label="pi")
    lines = text.splitlines()
    assert lines[0].split() == ["metric", "laptop", "pi", "pi/laptop"]
    assert lines[2].split() == ["latency_ms.onnx.1.p50", "2", "1", "0.500"]
    assert lines[3].split() == ["memory_mb.torch", "-", "5", "-"]
    assert len({len(line) for line in lines}) == 1  # every line padded to the same width


def test_plot_record_writes_a_png(record: dict[str, Any], tmp_path: Path) -> None:
    target = plot_record(record, tmp_path / "plots" / "bench.png")
    data = target.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert [p.name for p in target.parent.iterdir()] == ["bench.png"]


def test_plot_is_log_latency_and_throughput_per_engine_titled_with_machine_and_versions(
    record: dict[str, Any]
) -> None:
    from benchmarks.plot import draw_record

    latency_ax, throughput_ax = draw_record(record).axes
    assert (latency_ax.get_xscale(), latency_ax.get_yscale()) == ("log", "log")
    assert throughput_ax.get_xscale() == "log" and "images/s" in throughput_ax.get_ylabel()
    assert "batch size" in latency_ax.get_xlabel() and "latency" in latency_ax.get_ylabel()
    for ax in (latency_ax, throughput_ax):
        assert [t.get_text() for t in ax.get_legend().get_texts()] == list(record["latency_ms"])  # torch, onnx
        assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "4"]  # the measured batch sizes
    onnx_ips = throughput_ax.get_lines()[-1].get_ydata()
    assert list(onnx_ips) == [record["throughput_ips"]["onnx"][b] for b in ("1", "4")]
    title = latency_ax.figure.get_suptitle()
    env = record["environment"]
    assert env["cpu_model"] in title and env["versions"]["torch"] in title and env["versions"]["onnxruntime"] in title


def test_rows_and_summary_are_display_ready(bench_run: BenchRun) -> None:
    rows = bench_run.result.rows()
    assert [(r["engine"], r["batch"]) for r in rows] == [("torch", "1"), ("torch", "4"), ("onnx", "1"), ("onnx", "4")]
    assert all(isinstance(v, str) for row in rows for v in row.values())
    labels = [label for label, _ in bench_run.result.summary_rows()]
    assert {"accuracy", "peak memory", "runtime overhead", "pipeline"} <= set(labels)
