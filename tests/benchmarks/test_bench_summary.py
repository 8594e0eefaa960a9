"""`toolkit bench-summary`: several records as a latency table and a facts table (arithmetic, not speed)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from bench_models import BenchRun
from click.testing import CliRunner

from benchmarks import RecordError, write_record
from benchmarks.summary import FACT_COLUMNS, LATENCY_COLUMNS, fact_rows, latency_rows
from toolkit.cli import cli


@pytest.fixture
def record(bench_run: BenchRun) -> dict[str, Any]:
    return copy.deepcopy(bench_run.result.to_dict())


def test_latency_rows_are_per_batch_size_with_speedup(record: dict[str, Any]) -> None:
    batch = next(iter(record["latency_ms"]["onnx"]))
    record["latency_ms"]["torch"][batch]["p50"] = 3.0
    record["latency_ms"]["onnx"][batch]["p50"] = 1.5
    record["fraction_of_peak"]["onnx"][batch] = 0.734
    rows = latency_rows([("a", record)])
    assert [r[1] for r in rows] == list(record["latency_ms"]["onnx"])  # one row per batch size, in record order
    row = dict(zip(LATENCY_COLUMNS, rows[0]))
    assert row["torch p50 ms"] == "3.000" and row["onnx p50 ms"] == "1.500" and row["onnx speed-up"] == "2.00x"
    assert row["onnx % of peak"] == "73%"


def test_fact_rows_show_missing_figures_as_dashes(record: dict[str, Any]) -> None:
    record["memory_mb"] = {"torch": 500.4, "onnx": None, "runtime_edge": 81.6}
    record["runtime_overhead_pct"] = {"1": 3.04, "64": -0.46}
    row = dict(zip(FACT_COLUMNS, fact_rows([("b", record)])[0]))
    assert (row["peak MB torch"], row["peak MB onnx"], row["peak MB edge"]) == ("500", "-", "82")
    assert (row["overhead b1"], row["overhead b64"]) == ("+3.0%", "-0.5%")
    with pytest.raises(RecordError, match="schema_version"):
        fact_rows([("c", {"schema_version": -1})])


def test_cli_prints_both_tables_and_writes_markdown(bench_run: BenchRun, tmp_path: Path) -> None:
    a = write_record(tmp_path / "a.json", bench_run.result)
    b = write_record(tmp_path / "b.json", bench_run.result)
    out = tmp_path / "summary.md"
    result = CliRunner().invoke(cli, ["bench-summary", str(a), str(b), "--markdown", str(out)],
                                env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.count("| record |") == 2 and "\n| a | " in text and "\n| b | " in text
    assert "Latency and throughput" in result.output and "Accuracy, memory, overhead" in result.output
    bad = CliRunner().invoke(cli, ["bench-summary", str(tmp_path / "missing.json")])
    assert bad.exit_code == 1 and "cannot read benchmark record" in bad.output
