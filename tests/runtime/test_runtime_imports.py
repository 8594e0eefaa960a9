"""runtime is embeddable: importing it pulls in none of torch, click, rich or PIL."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import runtime

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("torch", "torchvision", "click", "rich", "PIL", "matplotlib", "toolkit", "exporters", "benchmarks")


def test_import_pulls_in_no_heavy_or_cli_modules() -> None:
    code = (
        "import runtime, sys; "
        "loaded = [m for m in ('torch', 'click', 'rich', 'PIL') if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


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
