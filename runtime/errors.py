"""Error classes of the embeddable runtime.

Every message is one line: what was expected, what was given, and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "RuntimeToolkitError",
    "ModelFileError",
    "ProviderError",
    "InputError",
    "UnknownLayerError",
]


class RuntimeToolkitError(Exception):
    """Base class of every error raised by the ``runtime`` package."""


class ModelFileError(RuntimeToolkitError):
    """The model file is missing, empty, a Git LFS pointer, truncated, corrupt or unsafe."""


class ProviderError(RuntimeToolkitError):
    """The requested execution provider is unknown or could not be made active."""


class InputError(RuntimeToolkitError, ValueError):
    """An array, image or option given to the runtime API does not fit the model."""


class UnknownLayerError(RuntimeToolkitError, KeyError):
    """A requested layer name is not among those recorded in the model's ``toolkit.layers``."""

    def __str__(self) -> str:
        # KeyError.__str__ quotes its argument; keep the message readable instead.
        return str(self.args[0]) if self.args else ""
