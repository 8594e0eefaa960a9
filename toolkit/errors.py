"""Errors of the torch side of the toolkit; the CLI prints them as one line."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its class name when it has none), for one-line errors."""
    text = str(exc.args[0]) if exc.args else str(exc)  # KeyError's str() adds quotes
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


class ToolkitError(Exception):
    """Base class: a problem the user can fix, reported as one line."""


class DataError(ToolkitError):
    """The dataset could not be found, downloaded or read."""


class CheckpointError(ToolkitError):
    """A checkpoint is missing, not a checkpoint, or of an unknown format version."""


class ConfigError(ToolkitError):
    """An option or configuration value is unknown or out of range."""
