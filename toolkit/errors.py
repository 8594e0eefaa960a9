"""Errors of the torch side of the toolkit; the CLI prints them as one line."""


class ToolkitError(Exception):
    """Base class: a problem the user can fix, reported as one line."""


class DataError(ToolkitError):
    """The dataset could not be found, downloaded or read."""


class CheckpointError(ToolkitError):
    """A checkpoint is missing, not a checkpoint, or of an unknown format version."""


class ConfigError(ToolkitError):
    """An option or configuration value is unknown or out of range."""
