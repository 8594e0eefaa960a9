"""The CLI turns every library error into one line and a non-zero exit; --debug shows the traceback."""
import subprocess
import sys

import pytest
from click.testing import CliRunner

from toolkit.cli import cli


def _run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_summary_prints_task2_counts():
    result = _run("summary", "--model", "task2")
    assert result.exit_code == 0, result.output
    for count in ("2,432", "51,264", "204,928", "131,136", "650", "390,410"):
        assert count in result.output


def test_summary_at_another_input_size():
    result = _run("summary", "--model", "net1", "--input-size", "64", "64")
    # a 64x64 input changes the flattened size: Dense 64 has 8192*64+64 parameters
    assert result.exit_code == 0 and "524,352" in result.output


@pytest.mark.parametrize("args, message", [
    (("summary", "--model", "vgg"), "unknown model 'vgg'"),
    (("export", "--onnx", "missing.pt"), "checkpoint missing.pt does not exist"),
    (("report", "no-such-run"), "is not a run directory"),
    (("train", "--model", "task2", "--data", "/nonexistent/cifar"), "/nonexistent/cifar"),
])
def test_errors_are_one_line_and_exit_non_zero(args, message):
    result = _run(*args)
    assert result.exit_code == 1
    lines = [l for l in result.output.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.output
    assert "Traceback" not in result.output


def test_debug_shows_the_traceback():
    proc = subprocess.run([sys.executable, "-m", "toolkit", "--debug", "summary", "--model", "vgg"],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "ConfigError" in proc.stderr


@pytest.mark.parametrize("args", [
    ("train", "--model", "vgg"),
    ("train", "--model", "task2", "--data", "/nonexistent/cifar"),
    ("bench", "missing.pt", "missing.onnx", "--provider", "cuda"),
])
def test_an_error_before_the_work_prints_nothing_but_the_error_line(args):
    # The progress display starts with the first training or benchmark step; stopping one that never started would
    # print a blank line to stdout before the error.
    result = _run(*args)
    assert result.exit_code == 1
    assert result.stdout == "", repr(result.stdout)
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error:"), result.stderr


def test_an_option_missing_its_values_points_to_the_sub_commands_help():
    result = _run("bench", "--compare", "a.json")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: Option '--compare' requires 2 arguments. (see 'toolkit bench --help')"


@pytest.mark.parametrize("args", [
    ("export", "--onnx", "missing.pt", "--images", "0"),
    ("export", "--onnx", "missing.pt", "--images", "-3"),
    ("predict", "missing.onnx", "photo.jpg", "--top", "0"),
    ("bench", "missing.pt", "missing.onnx", "--images", "0"),
])
def test_counts_below_one_are_usage_errors_before_any_work(args):
    result = _run(*args)
    assert result.exit_code == 2, result.output
    assert "is not in the range x>=1" in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr


def test_a_folder_given_as_a_photo_says_it_is_a_folder(tmp_path):
    from toolkit.errors import ToolkitError
    from toolkit.images import read_image

    with pytest.raises(ToolkitError, match=rf"image {tmp_path} is a folder: expected a JPEG/PNG photo file; pass the "
                                           rf"photos in it \(for example {tmp_path}/\*\.jpg\)"):
        read_image(tmp_path)


def test_export_refuses_zero_images_before_writing_anything(tmp_path):
    from toolkit.deploy import export_checkpoint
    from toolkit.errors import ToolkitError

    with pytest.raises(ToolkitError, match=r"images is 0: expected a positive number of test images"):
        export_checkpoint(tmp_path / "checkpoint.pt", tmp_path / "m.onnx", images=0)
    assert list(tmp_path.iterdir()) == []
