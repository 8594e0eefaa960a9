"""Peak-memory children, and what importing the package pulls in."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from bench_models import INPUT_SIZE, TinyNet

from benchmarks import MemoryProbeError, torch_probe_command
from benchmarks.memory import SYNTHETIC_PHOTO_HWC, edge_probe_command, onnx_probe_command, probe_memory

PACKAGE = Path(__file__).resolve().parents[2] / "benchmarks"


def test_onnx_child_reports_plausible_peak_memory(tiny_onnx: Path) -> None:
    result = probe_memory(onnx_probe_command(tiny_onnx, threads=1))
    assert result["engine"] == "onnx" and result["threads"] == 1
    # onnxruntime + numpy + a tiny model: ~100 MB. This pytest process holds torch (~500 MB); Linux's
    # ru_maxrss would report that inherited high-water mark, so a fresh interpreter must start small.
    assert result["startup_rss_mb"] < 100
    assert result["startup_rss_mb"] < result["peak_rss_mb"] < 300


def test_edge_child_classifies_a_real_photo_without_torch(tiny_onnx: Path, data_dir: Path) -> None:
    photo = data_dir / "images" / "cat.jpg"
    result = probe_memory(edge_probe_command(tiny_onnx, image=photo, threads=1))
    assert result["engine"] == "edge" and result["threads"] == 1
    assert result["image"]["source"] == "photo" and result["image"]["path"] == str(photo)
    assert len(result["image"]["shape"]) in (2, 3) and min(result["image"]["shape"][:2]) > 32  # a real photo
    assert 0 <= result["predicted"] < 10 and result["predicted_class"] == f"c{result['predicted']}"
    assert "PIL" in result["modules_loaded"] and "torch" not in result["modules_loaded"]
    assert result["startup_rss_mb"] < result["peak_rss_mb"] < 300


def test_edge_child_without_a_photo_uses_a_synthetic_image(tiny_onnx: Path) -> None:
    result = probe_memory(edge_probe_command(tiny_onnx, image=None, threads=1))
    assert result["image"] == {"source": "synthetic", "shape": list(SYNTHETIC_PHOTO_HWC)}
    assert "PIL" not in result["modules_loaded"] and "torch" not in result["modules_loaded"]


def test_edge_child_with_a_missing_photo_fails_with_the_command(tiny_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(MemoryProbeError, match="run it by hand"):
        probe_memory(edge_probe_command(tiny_onnx, image=tmp_path / "missing.jpg", threads=1))


def test_torch_child_loads_the_model_through_the_loader(
    tiny_model: TinyNet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint = tmp_path / "tiny.pt"
    torch.save(tiny_model.state_dict(), checkpoint)
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # where bench_models lives
    result = probe_memory(torch_probe_command("bench_models:load_tiny", checkpoint, INPUT_SIZE, threads=1))
    assert result["engine"] == "torch"
    assert result["startup_rss_mb"] < 100
    assert 50 < result["peak_rss_mb"] < 4000  # torch alone is well over 50 MB resident


def test_failing_child_raises_with_the_command() -> None:
    command = [sys.executable, "-c", "import sys; sys.exit(3)"]
    with pytest.raises(MemoryProbeError, match="exited with code 3.*run it by hand"):
        probe_memory(command)


def test_child_without_json_output_raises() -> None:
    with pytest.raises(MemoryProbeError, match="expected a JSON line"):
        probe_memory([sys.executable, "-c", "print('hello')"])


def test_memory_module_imports_no_engine() -> None:
    code = "import sys, benchmarks, benchmarks.memory; print(sorted({'torch', 'onnxruntime'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent).stdout
    assert out.strip() == "[]"


def test_package_never_imports_toolkit_click_or_rich() -> None:
    forbidden = re.compile(r"^\s*(from|import)\s+(toolkit|click|rich)\b", re.MULTILINE)
    offenders = [p.name for p in PACKAGE.glob("*.py") if forbidden.search(p.read_text())]
    assert offenders == []
