"""The CLI commands around a run: report, plot, doctor, export errors, train option errors, bench --compare."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from checkpoint_builders import net1_with_running_stats, save_net1_checkpoint  # on sys.path under pytest
from click.testing import CliRunner, Result
from PIL import Image

import toolkit.deploy as deploy
from runtime import check_environment, environment
from toolkit.cli import cli
from toolkit.config import make_config


def _run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], env={"COLUMNS": "160"})


def _lines(result: Result) -> list[str]:
    return [line for line in result.output.splitlines() if line.strip()]


def _one_line_error(result: Result) -> str:
    """The single 'error: ...' line of a failed command (and nothing else, no traceback)."""
    assert result.exit_code == 1, result.output
    lines = _lines(result)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


def _write_run(path: Path, model: str, epochs: int, train_loss: float, accuracies: tuple[float, float, float]) -> Path:
    history = [{"epoch": e, "lr": 0.05, "train_loss": train_loss + (epochs - e) * 0.3, "train_accuracy": 0.3 + 0.1 * e,
                "val_loss": train_loss + 0.2 + (epochs - e) * 0.25, "val_accuracy": 0.25 + 0.1 * e, "seconds": 1.0}
               for e in range(1, epochs + 1)]
    train_acc, val_acc, test_acc = accuracies
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps({
        "model": model, "epochs_run": epochs, "best_epoch": epochs, "train_loss": train_loss,
        "train_accuracy": train_acc, "val_loss": 1.0, "val_accuracy": val_acc, "test_loss": 1.1,
        "test_accuracy": test_acc, "history": history, "config": make_config(model, epochs=epochs).to_dict()}))
    return path


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    return (_write_run(tmp_path / "task2-run", "task2", 3, 1.23456, (0.61234, 0.55556, 0.54321)),
            _write_run(tmp_path / "net1-run", "net1", 5, 0.87654, (0.81111, 0.70001, 0.69996)))


def _markdown_rows(text: str) -> dict[str, dict[str, str]]:
    """run name -> {column: cell} of a Markdown table."""
    lines = [line.strip().strip("|").split("|") for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0]]
    return {cells[0].strip(): dict(zip(header, (c.strip() for c in cells))) for cells in lines[2:]}


def test_report_prints_and_writes_the_table(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    markdown = tmp_path / "docs" / "results.md"
    markdown.parent.mkdir()
    result = _run("report", *two_runs, "--markdown", markdown)
    assert result.exit_code == 0, result.output
    expected = {
        "task2-run": {"model": "task2", "epochs": "3", "train loss": "1.2346", "train acc": "0.6123",
                      "val acc": "0.5556", "test acc": "0.5432"},
        "net1-run": {"model": "net1", "epochs": "5", "train loss": "0.8765", "train acc": "0.8111",
                     "val acc": "0.7000", "test acc": "0.7000"},
    }
    rows = _markdown_rows(markdown.read_text())
    assert list(rows)[:1] == ["task2-run"] and "net1-run" in rows  # one row per run, in the order given
    for run, cells in expected.items():
        assert {k: rows[run][k] for k in cells} == cells, run
    # the terminal table (and the Markdown echoed after it): the same rounded numbers on each run's row
    for run, cells in expected.items():
        (row,) = [line for line in result.output.splitlines() if line.startswith(f"│ {run} ")]
        numbers = [cells[k] for k in ("train loss", "train acc", "val acc", "test acc")]
        assert [t for t in row.replace("│", " ").split() if t in numbers] == numbers, row
        assert _markdown_rows(result.output[result.output.index("| run "):])[run] == rows[run]


def test_report_of_an_incomplete_run_is_one_line(tmp_path: Path) -> None:
    run = tmp_path / "half"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"model": "task2", "epochs_run": 1}))
    line = _one_line_error(_run("report", run))
    assert "lacks train_loss, train_accuracy, val_accuracy, test_accuracy, history" in line
    line = _one_line_error(_run("plot", run, "-o", tmp_path / "x.png"))
    assert "lacks train_loss" in line and not (tmp_path / "x.png").exists()


def test_plot_writes_a_png(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "figures" / "curves.png"
    out.parent.mkdir()
    result = _run("plot", *two_runs, "--label", "Task 2 CNN", "--title", "Figure 1", "-o", out)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output.replace("\n", "")
    assert out.stat().st_size > 20_000  # two panels with curves, legends, labels
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width > 800 and image.height > 300
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 50  # not a blank canvas
    assert [p.name for p in out.parent.iterdir()] == ["curves.png"]  # written atomically, nothing left over


def test_doctor_reports_versions_and_providers() -> None:
    import onnx
    import onnxruntime as ort

    result = _run("doctor")
    env = check_environment()
    assert result.exit_code == (1 if env["problems"] else 0), result.output
    text = result.output
    for key in ("torch", "onnx", "onnxruntime", "providers_available", "providers_usable"):
        assert any(line.strip("│ ").startswith(key) for line in text.splitlines()), key
    assert ort.__version__ in text and onnx.__version__ in text and env["torch"] in text
    assert "CPUExecutionProvider" in text
    rows = {line.strip("│ ").split()[0]: line for line in text.splitlines() if line.startswith("│ ")}
    import torch

    assert f"intra_op={torch.get_num_threads()}, inter_op={torch.get_num_interop_threads()}" in rows["torch_threads"]
    assert "intra_op_default=0" in rows["onnxruntime_threads"]  # 0: onnxruntime's own choice
    assert f"cores_logical={env['cpu']['cores_logical']}" in text and "cores_physical=" in text


def test_doctor_exit_code_follows_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(environment, "installed_onnxruntime_distributions", lambda: {"onnxruntime": "1.20.0"})
    monkeypatch.setattr(environment, "usable_providers", lambda available: (list(available), {}))
    clean = _run("doctor")
    assert clean.exit_code == 0 and "no problems found" in clean.output, clean.output

    both = {"onnxruntime": "1.20.0", "onnxruntime-gpu": "1.20.1"}
    monkeypatch.setattr(environment, "installed_onnxruntime_distributions", lambda: both)
    result = _run("doctor")
    assert result.exit_code == 1, result.output
    (problem,) = [line for line in result.output.splitlines() if line.startswith("problem:")]
    assert "both onnxruntime 1.20.0 and onnxruntime-gpu 1.20.1 are installed" in problem
    assert "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu" in problem
    assert "no problems found" not in result.output


def test_export_of_a_file_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.pt"
    bogus.write_text("these are notes, not weights\n")
    line = _one_line_error(_run("export", "--onnx", bogus, "-o", tmp_path / "m.onnx"))
    assert f"{bogus} (29 bytes) is not a toolkit checkpoint" in line and "'toolkit train'" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.pt"]  # no ONNX file, no report

    proc = subprocess.run([sys.executable, "-m", "toolkit", "--debug", "export", "--onnx", str(bogus)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr and "CheckpointError" in proc.stderr


def test_export_with_failing_validation_exits_1_and_keeps_the_report(cifar, monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    monkeypatch.setattr(deploy, "load_cifar10", lambda data=None: cifar)  # the real images, read once per session
    ckpt = save_net1_checkpoint(tmp_path / "checkpoint.pt", net1_with_running_stats())
    result = _run("export", "--onnx", ckpt, "--images", "16", "--batch-sizes", "1,4", "--atol", "1e-12")
    assert result.exit_code == 1, result.output
    assert "validation FAIL" in result.output and "features.2" in result.output  # the BatchNorm table
    report = json.loads((tmp_path / "net1.json").read_text())  # default: beside the checkpoint
    assert report["passed"] is False and report["failures"]
    assert all(f"- {f}" in result.output.replace("\n", "") for f in report["failures"][:1])


def test_export_diagnose_names_the_nested_module_path_that_differs(cifar, monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    import exporters
    import numpy as np
    import onnx
    from onnx import numpy_helper

    monkeypatch.setattr(deploy, "load_cifar10", lambda data=None: cifar)
    real_export = exporters.export_onnx

    def export_then_corrupt(model, path, **kwargs):  # type: ignore[no-untyped-def]
        result = real_export(model, path, **kwargs)
        proto = onnx.load(str(path))
        weight = [n for n in proto.graph.node if n.op_type == "Conv"][1].input[1]  # Network 1's features.4
        for tensor in proto.graph.initializer:
            if tensor.name == weight:
                values = numpy_helper.to_array(tensor).copy()
                values.flat[0] += np.float32(1.0)
                tensor.CopyFrom(numpy_helper.from_array(values, weight))
        onnx.save(proto, str(path))
        return result

    monkeypatch.setattr(exporters, "export_onnx", export_then_corrupt)
    ckpt = save_net1_checkpoint(tmp_path / "checkpoint.pt", net1_with_running_stats())
    result = _run("export", "--onnx", ckpt, "--images", "16", "--batch-sizes", "1,4", "--diagnose")
    assert result.exit_code == 1, result.output
    assert "validation FAIL" in result.output
    assert "diagnosis: first layer differing by more than 0.0001: features.4" in result.output
    diagnosis = json.loads((tmp_path / "net1.json").read_text())["diagnosis"]
    assert diagnosis["first_mismatch"] == "features.4" and diagnosis["folding_changed_output"] is False
    before = [layer["max_abs_diff"] for layer in diagnosis["layers"] if layer["path"] in ("features.0", "features.3")]
    assert len(before) == 2 and max(before) < 1e-4  # the layers before it still match


@pytest.mark.parametrize("args, message", [
    (("--dropout", "1.5"), "dropout must be in [0, 1), got 1.5"),
    (("--model", "vgg"), "unknown model 'vgg': expected one of net1, net2, resnet18, task2"),
    (("--epochs", "0"), "epochs must be at least 1, got 0"),
])
def test_train_with_a_bad_value_names_the_valid_ones(args: tuple[str, ...], message: str, tmp_path: Path) -> None:
    # --data points nowhere: the option must be refused before any data is looked for (or downloaded)
    line = _one_line_error(_run("train", *args, "--out", tmp_path / "run", "--data", tmp_path / "no-data"))
    assert message in line
    assert not (tmp_path / "run").exists()


def test_train_with_an_unknown_choice_is_a_usage_error(tmp_path: Path) -> None:
    result = _run("train", "--optimizer", "rmsprop", "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert "'rmsprop' is not one of 'sgd', 'adam'" in result.output and "Traceback" not in result.output


def _record(onnx_p50: float, onnx_memory: float | None) -> dict[str, Any]:
    """A minimal benchmark record with every required section."""
    stats = lambda p50: {"p50": p50, "p90": p50 * 1.2, "p99": p50 * 1.5, "mean": p50, "std": 0.1, "runs": 5}  # noqa: E731
    return {
        "schema_version": 1, "provider_requested": "cpu", "providers_active": ["CPUExecutionProvider"],
        "accuracy": {"torch": 0.7, "onnx": 0.7, "top1_agreement": 1.0},
        "latency_ms": {"torch": {"1": stats(2.0)}, "onnx": {"1": stats(onnx_p50)}},
        "throughput_ips": {"onnx": {"1": 1000.0 / onnx_p50}}, "first_run_ms": {"onnx": 3.0},
        "session_create_ms": 10.0, "memory_mb": {"torch": None, "onnx": onnx_memory}, "macs_per_image": 28_803_712,
        "gflops": {}, "peak_probe": {"gflops": 100.0}, "fraction_of_peak": {}, "runtime_overhead_pct": {},
        "pipeline": {}, "threads": 2, "settings": {}, "environment": {}, "model": {}, "command_line": "toolkit bench",
        "created": "2024-01-01T00:00:00+00:00",
    }


def test_bench_compare_prints_ratios(tmp_path: Path) -> None:
    # long file names: the aligned columns must stay on one line each, whatever the terminal width
    a = tmp_path / ("laptop-before-the-thread-change-" * 2 + "a.json")
    b = tmp_path / ("laptop-after-the-thread-change-" * 2 + "b.json")
    a.write_text(json.dumps(_record(1.0, 120.0)))
    b.write_text(json.dumps(_record(0.5, 300.0)))
    result = CliRunner().invoke(cli, ["bench", "--compare", str(a), str(b)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1:] for line in result.output.splitlines() if line.strip()}
    assert rows["metric"] == [a.name, b.name, f"{b.name}/{a.name}"]
    assert rows["latency_ms.onnx.1.p50"] == ["1", "0.5", "0.500"]
    assert rows["latency_ms.torch.1.p50"] == ["2", "2", "1.000"]
    assert rows["memory_mb.onnx"] == ["120", "300", "2.500"]
    assert rows["memory_mb.torch"] == ["-", "-", "-"]  # not measured in either record
    assert rows["macs_per_image"] == ["2.880e+07", "2.880e+07", "1.000"]
    assert all(len(cells) == 3 for metric, cells in rows.items() if not metric.startswith("-"))


def test_bench_compare_names_same_named_records_a_and_b(tmp_path: Path) -> None:
    a, b = tmp_path / "laptop" / "bench.json", tmp_path / "board" / "bench.json"
    for path, p50 in ((a, 1.0), (b, 0.5)):
        path.parent.mkdir()
        path.write_text(json.dumps(_record(p50, 120.0)))
    result = CliRunner().invoke(cli, ["bench", "--compare", str(a), str(b)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:2] == [f"A = {a}", f"B = {b}"]
    assert lines[2].split() == ["metric", "A", "B", "B/A"]


def test_bench_compare_refuses_a_file_that_is_not_a_record(tmp_path: Path) -> None:
    good, bad = tmp_path / "a.json", tmp_path / "b.json"
    good.write_text(json.dumps(_record(1.0, None)))
    bad.write_text(json.dumps({"schema_version": 1, "accuracy": {}}))
    line = _one_line_error(_run("bench", "--compare", good, bad))
    assert "benchmark record is missing provider_requested" in line


def test_report_puts_the_study_beside_the_first_run_of_each_model(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    markdown = tmp_path / "results.md"
    result = _run("report", *two_runs, two_runs[0], "--markdown", markdown)
    assert result.exit_code == 0, result.output
    rows = _markdown_rows(markdown.read_text())
    assert list(rows) == ["task2-run", "study: task2", "net1-run", "study: net1"]  # the repeated run adds none
    assert {k: rows["study: task2"][k] for k in ("train acc", "val acc", "test acc")} == {
        "train acc": "0.8725", "val acc": "0.7318", "test acc": "0.7361"}
    assert rows["study: task2"]["train loss"] == "-"  # the study did not report it
    assert rows["net1-run"]["setup"] == "SGD 0.05 x0.1/4 epochs, batch 64, early stopping"
    plain = tmp_path / "plain.md"
    assert _run("report", *two_runs, "--no-study", "--markdown", plain).exit_code == 0
    assert list(_markdown_rows(plain.read_text())) == ["task2-run", "net1-run"]


def test_report_shows_the_onnx_validation_of_exported_runs(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    task2_run, net1_run = two_runs
    (net1_run / "model.json").write_text(json.dumps({
        "max_abs_diff": 5.25e-6, "top1_agreement": 1.0, "passed": True, "batchnorm_folded": 2, "batchnorm_kept": 2}))
    markdown = tmp_path / "results.md"
    assert _run("report", task2_run, net1_run, "--no-study", "--markdown", markdown).exit_code == 0
    rows = _markdown_rows(markdown.read_text())
    assert {k: rows["net1-run"][k] for k in ("ONNX max diff", "ONNX top-1 agree", "BN folded/kept")} == {
        "ONNX max diff": "5.2e-06", "ONNX top-1 agree": "1.0000", "BN folded/kept": "2/2"}
    assert rows["task2-run"]["ONNX max diff"] == "-"  # not exported into its run folder
    (net1_run / "model.json").write_text(json.dumps({**json.loads((net1_run / "model.json").read_text()),
                                                    "passed": False, "max_abs_diff": 0.5}))
    assert _run("report", net1_run, "--markdown", markdown).exit_code == 0
    assert _markdown_rows(markdown.read_text())["net1-run"]["ONNX max diff"] == "5.0e-01 FAIL"
    (net1_run / "model.json").write_text("{not json")
    line = _one_line_error(_run("report", net1_run))
    assert "model.json is not valid JSON" in line and "toolkit export --onnx" in line


@pytest.mark.parametrize(("args", "message"), [
    (("bench", "a.pt", "b.onnx", "--batch-sizes", "0"), "Invalid value for '--batch-sizes': expected positive"),
    (("bench", "a.pt", "b.onnx", "--batch-sizes", "1,,8"), "Invalid value for '--batch-sizes': expected comma-sep"),
    (("train", "--optimizer", "rmsprop"), "'rmsprop' is not one of 'sgd', 'adam'"),
    (("predict",), "Missing argument 'MODEL_PATH'"),
    (("summary", "--model", "task2", "--input-size", "0", "0"), "0 is not in the range x>=1"),
])
def test_usage_errors_are_one_line_with_status_2(args: tuple[str, ...], message: str) -> None:
    result = _run(*args)
    assert result.exit_code == 2, result.output
    lines = _lines(result)
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output
    assert f" {args[0]} --help')" in lines[0]  # (see 'toolkit CMD --help'); the runner calls the program 'cli'


def test_summary_of_a_size_the_model_cannot_take_is_one_line() -> None:
    line = _one_line_error(_run("summary", "--model", "task2", "--input-size", "4", "4"))
    assert "input size (3, 4, 4) does not fit this model" in line and "larger --input-size" in line


def test_export_of_a_directory_or_an_onnx_file_says_what_to_pass(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"x")
    line = _one_line_error(_run("export", "--onnx", run))
    assert f"checkpoint {run} is a directory, not a file: pass {run / 'checkpoint.pt'}" in line
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(b"\x08\x07" * 64)
    line = _one_line_error(_run("export", "--onnx", onnx_file))
    assert "is not a toolkit checkpoint" in line and "looks like an exported ONNX model" in line
    assert len(line) < 400  # torch's paragraph about weights_only is cut to its first sentence


def test_bench_summary_of_a_file_that_is_not_a_record_names_it(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"model": "task2", "epochs_run": 1}))
    line = _one_line_error(_run("bench-summary", metrics))
    assert str(metrics) in line and "expected a benchmark record written by 'toolkit bench --json'" in line


def test_report_finds_the_export_report_beside_any_onnx_file_in_the_run(two_runs: tuple[Path, Path],
                                                                      tmp_path: Path) -> None:
    task2_run = two_runs[0]
    (task2_run / "task2.onnx").write_bytes(b"")
    (task2_run / "task2.json").write_text(json.dumps({"max_abs_diff": 1.9e-6, "top1_agreement": 1.0,
                                                      "batchnorm_folded": 0, "batchnorm_kept": 0}))
    markdown = tmp_path / "r.md"
    assert _run("report", task2_run, "--markdown", markdown).exit_code == 0
    assert _markdown_rows(markdown.read_text())["task2-run"]["ONNX max diff"] == "1.9e-06"
