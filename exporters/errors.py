"""Error classes of the ``exporters`` package.

Every message is one line: what was expected, what was given, and how to fix it.
"""

from __future__ import annotations

__all__ = ["ExportError", "FoldError", "ValidationError"]


class ExportError(Exception):
    """Base class of every error raised by the ``exporters`` package."""


class FoldError(ExportError):
    """A BatchNorm layer cannot be folded or exported exactly (e.g. it has no running statistics)."""


class ValidationError(ExportError):
    """The ONNX file disagrees with the torch model; the message lists every failure."""
