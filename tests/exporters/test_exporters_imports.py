"""exporters depends on torch, onnx, onnxruntime, numpy and runtime only: never toolkit, click or rich."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_importing_exporters_pulls_in_no_toolkit_click_or_rich():
    code = (
        "import sys, exporters; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('toolkit', 'click', 'rich')); "
        "print(','.join(bad))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_public_names():
    import exporters

    assert {"fold_batchnorm", "export_onnx", "validate_export", "diagnose_export"} <= set(exporters.__all__)
    assert all(hasattr(exporters, name) for name in exporters.__all__)
