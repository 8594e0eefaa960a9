"""`toolkit bench` on the command line: refusals that must come before any long work, as one line."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner, Result

import toolkit.benchmark
from exporters import export_onnx
from toolkit.benchmark import DEFAULT_PHOTO, _edge_photo
from toolkit.checkpoint import load_checkpoint, save_checkpoint
from toolkit.cli import cli
from toolkit.config import make_config
from toolkit.data import CIFAR10_MEAN, CIFAR10_STD
from toolkit.models import CIFAR10_CLASSES, get_model


@pytest.fixture(scope="module")
def task2_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A Task 2 checkpoint with seeded random weights and its ONNX export, as 'toolkit export' writes it."""
    folder = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    checkpoint = save_checkpoint(folder / "checkpoint.pt", get_model("task2").eval(), name="task2", model_args={},
                                 input_size=(3, 32, 32), mean=CIFAR10_MEAN, std=CIFAR10_STD, classes=CIFAR10_CLASSES,
                                 config=make_config("task2").to_dict(), metrics={})
    loaded = load_checkpoint(checkpoint)
    exported = export_onnx(loaded.model, folder / "task2.onnx", input_size=loaded.input_size,
                           metadata=loaded.export_metadata())
    return checkpoint, Path(exported.path)


def _one_error_line(result: Result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def no_benchmark(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any call of the benchmark itself fails the test: the refusal must come first."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the benchmark started before the arguments were checked")

    monkeypatch.setattr(toolkit.benchmark, "bench_checkpoint", refuse)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_on_a_cpu_machine_is_one_line_naming_the_providers(task2_files: tuple[Path, Path]) -> None:
    checkpoint, model = task2_files
    line = _one_error_line(CliRunner().invoke(cli, ["bench", str(checkpoint), str(model), "--provider", "cuda"]))
    assert "CUDA is not active" in line
    assert "active providers:" in line and "CPUExecutionProvider" in line
    assert "torch" not in line  # onnxruntime's diagnosis, not torch's


@pytest.mark.parametrize("option", ["--json", "--plot"])
def test_missing_output_folder_is_refused_before_the_benchmark(
    task2_files: tuple[Path, Path], tmp_path: Path, no_benchmark: None, option: str
) -> None:
    target = tmp_path / "no-such-folder" / "bench.out"
    line = _one_error_line(CliRunner().invoke(cli, ["bench", *map(str, task2_files), option, str(target)]))
    assert option in line and str(target.parent) in line and "does not exist" in line


def test_output_path_that_is_a_folder_or_under_a_file_is_refused(
    task2_files: tuple[Path, Path], tmp_path: Path, no_benchmark: None
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    for target, message in ((tmp_path, "is a folder"), (tmp_path / "a-file" / "bench.json", "is not a folder")):
        line = _one_error_line(CliRunner().invoke(cli, ["bench", *map(str, task2_files), "--json", str(target)]))
        assert message in line and str(target) in line


def test_missing_photo_is_refused_before_any_work(task2_files: tuple[Path, Path], tmp_path: Path) -> None:
    photo = tmp_path / "missing.jpg"
    line = _one_error_line(CliRunner().invoke(cli, ["bench", *map(str, task2_files), "--image", str(photo)]))
    assert f"image {photo} does not exist" in line


def test_edge_photo_defaults_to_the_data_folder_photo(data_dir: Path, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    assert _edge_photo(None, data_dir) == data_dir / DEFAULT_PHOTO
    assert _edge_photo(tmp_path / "mine.jpg", data_dir) == tmp_path / "mine.jpg"
    (tmp_path / "cifar-10-python.tar.gz").symlink_to(data_dir / "cifar-10-python.tar.gz")  # data, no photos
    with caplog.at_level(logging.WARNING, logger="toolkit.benchmark"):
        assert _edge_photo(None, tmp_path) is None
    assert "synthetic image" in caplog.text
