"""`toolkit bench`: torch vs ONNX Runtime, accuracy and latency, as a table and a JSON record."""
from __future__ import annotations

import click

from toolkit.cli import cli, handle_errors  # noqa: F401  (filled in below)
