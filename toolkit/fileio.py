"""Atomic writes: a temporary file in the target's folder, then a rename, so nothing half-written remains."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from runtime._fileio import file_mode, write_atomic

__all__ = ["file_mode", "write_atomic", "write_json_atomic"]


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    return write_atomic(path, lambda f: f.write(text.encode()))
