"""toolkit predict: one class per real photo, from a small exported model, through the runtime (no torch)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch import nn

from exporters import export_onnx
from toolkit.cli import cli
from toolkit.models import CIFAR10_CLASSES

PHOTOS = ("cat.jpg", "deer.jpg", "kitten.jpg", "zebra.jpg")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    path = tmp_path_factory.mktemp("predict") / "tiny.onnx"
    export_onnx(model, path, input_size=(3, 32, 32), metadata={
        "model": "tiny", "mean": [0.49, 0.48, 0.45], "std": [0.25, 0.24, 0.26],
        "classes": list(CIFAR10_CLASSES), "version": "0.1.0"})
    return path


@pytest.fixture
def photos(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The real photos, plus a grayscale and an RGBA copy, as short names in the working directory.

    Short relative names keep each path on one line of the table.
    """
    for name in PHOTOS:
        shutil.copy(data_dir / "images" / name, tmp_path / name)
    with Image.open(data_dir / "images" / "kitten.jpg") as img:
        img.convert("L").save(tmp_path / "gray.png")
    with Image.open(data_dir / "images" / "zebra.jpg") as img:
        img.convert("RGBA").save(tmp_path / "rgba.png")
    monkeypatch.chdir(tmp_path)
    return [*PHOTOS, "gray.png", "rgba.png"]


def test_predict_names_a_class_for_every_photo(model_path: Path, photos: list[str]) -> None:
    result = CliRunner().invoke(cli, ["predict", str(model_path), *photos, "--top", "1"])
    assert result.exit_code == 0, result.output
    rows = {name: [line for line in result.output.splitlines() if f" {name} " in line] for name in photos}
    for name, lines in rows.items():
        assert len(lines) == 1, (name, result.output)
        predicted = [c for c in CIFAR10_CLASSES if f" {c} " in lines[0]]
        assert predicted, f"no class name from the metadata in the row of {name}: {lines[0]!r}"


def test_predict_missing_image_is_one_line(model_path: Path, photos: list[str]) -> None:
    result = CliRunner().invoke(cli, ["predict", str(model_path), photos[0], "missing.jpg"])
    assert result.exit_code == 1
    assert result.output.strip().startswith("error:") and "missing.jpg does not exist" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_predict_does_not_import_torch(model_path: Path, photos: list[str]) -> None:
    script = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from toolkit.cli import cli\n"
        f"result = CliRunner().invoke(cli, ['predict', {str(model_path)!r}, *{photos!r}])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_top_larger_than_the_class_count_shows_every_class_once(model_path: Path, data_dir: Path) -> None:
    photo = str(data_dir / "images" / "cat.jpg")
    result = CliRunner().invoke(cli, ["predict", str(model_path), photo, "--top", "11"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert "top 10" in result.output and "top 11" not in result.output
    import re

    text = " ".join(w for w in result.output.split() if w != "│")  # the table may wrap the cell
    shown = re.findall(r"([a-z]+) [01]\.\d\d", text)
    assert sorted(shown) == sorted(CIFAR10_CLASSES)  # each class once, none repeated or invented
