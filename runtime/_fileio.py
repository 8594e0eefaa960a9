"""Atomic file writes (standard library only), the one implementation every package of the project uses.

It sits in ``runtime`` because that is the one package all the others may import (exporters and
benchmarks depend on runtime, never on toolkit); it is private and not part of the embeddable API.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable


def write_atomic(path: str | os.PathLike[str], write: Callable[[IO[bytes]], Any], *,
                 check: Callable[[Path], Any] | None = None) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it onto ``path``.

    ``check(temporary_path)``, when given, runs on the complete temporary file before the rename; an
    exception from ``write`` or ``check`` removes the temporary file and leaves ``path`` as it was, so a
    reader never sees half a file and a failed write never replaces a good one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        if check is not None:
            check(Path(temp))
        os.chmod(temp, file_mode())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target


def file_mode() -> int:
    """The mode a plain ``open()`` would give a new file (0o666 less the umask): mkstemp's 0o600 is for the
    temporary name only, not for the file the user gets."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
