"""runtime is embeddable: importing and running it pulls in none of torch, click, rich, PIL or onnx."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import runtime

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("torch", "torchvision", "click", "rich", "PIL", "matplotlib", "toolkit", "exporters", "benchmarks")
# onnx + protobuf cost ~20 MB resident; only graph edits (Session.intermediates) may load them.
NOT_ON_THE_RUN_PATH = ("torch", "click", "rich", "PIL", "onnx", "google.protobuf")
RUN_PATH = """
import json, sys
import numpy as np
import runtime
session = runtime.Session(sys.argv[1])
image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
predicted = session.predict([image])
metadata = runtime.load_metadata(sys.argv[1])
report = runtime.check_environment()
loaded = [m for m in json.loads(sys.argv[2]) if m in sys.modules]
print(json.dumps({"predicted": predicted.tolist(), "model": metadata.model, "loaded": loaded}))
"""
INTERMEDIATES = """
import json, sys
import numpy as np
import runtime
session = runtime.Session(sys.argv[1])
batch = np.zeros((2, 3, 32, 32), dtype=np.float32)
out = session.intermediates(batch, ["conv1", "pool"])
print(json.dumps({name: list(array.shape) for name, array in out.items()}))
"""


def _run_script(script: str, *args: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    data: dict = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def test_import_pulls_in_no_heavy_or_cli_modules() -> None:
    code = (
        "import runtime, sys; "
        "loaded = [m for m in ('torch', 'click', 'rich', 'PIL') if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_open_predict_metadata_and_doctor_load_no_onnx(conv_model_path: Path) -> None:
    out = _run_script(RUN_PATH, str(conv_model_path), json.dumps(NOT_ON_THE_RUN_PATH))
    assert out["loaded"] == []
    assert len(out["predicted"]) == 1 and 0 <= out["predicted"][0] < 10
    assert out["model"] == "tiny"


def test_intermediates_still_work_in_a_fresh_process(conv_model_path: Path) -> None:
    """The one feature that edits the graph imports onnx itself, on first use."""
    assert _run_script(INTERMEDIATES, str(conv_model_path)) == {"conv1": [2, 4, 32, 32], "pool": [2, 4, 1, 1]}


def test_sources_import_only_allowed_packages() -> None:
    """Also catches a lazy import inside a function, which the subprocess test would miss."""
    offenders = []
    for source in sorted((ROOT / "runtime").glob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{source.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []


def test_public_api_is_short_and_complete() -> None:
    assert sorted(runtime.__all__) == sorted(
        [
            "Session",
            "ModelMetadata",
            "load_metadata",
            "check_environment",
            "RuntimeToolkitError",
            "ModelFileError",
            "ProviderError",
            "InputError",
            "UnknownLayerError",
        ]
    )
    for name in runtime.__all__:
        assert getattr(runtime, name).__doc__, f"{name} has no docstring"
    assert issubclass(runtime.InputError, ValueError)
    for error in ("ModelFileError", "ProviderError", "InputError", "UnknownLayerError"):
        assert issubclass(getattr(runtime, error), runtime.RuntimeToolkitError)
