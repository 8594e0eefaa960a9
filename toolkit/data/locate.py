"""Find the CIFAR-10 archive: explicit path, then ``TOOLKIT_DATA``, then the user cache (downloading there)."""

from __future__ import annotations

import hashlib
import logging
import os
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from toolkit.errors import DataError
from toolkit.fileio import write_atomic

logger = logging.getLogger(__name__)

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
BATCHES_DIR = "cifar-10-batches-py"
ENV_VAR = "TOOLKIT_DATA"
# Members a complete copy holds; readme.html is not needed.
MEMBER_NAMES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")

_EXPECTED = (
    f"{ARCHIVE_NAME} (or another tar of the CIFAR-10 python version), a directory holding it, "
    f"or a directory holding {BATCHES_DIR}/ (or that directory itself)"
)
_CHUNK = 1 << 20


def cache_dir() -> Path:
    """Return the per-user cache directory: ``$XDG_CACHE_HOME/toolkit/cifar10`` or ``~/.cache/toolkit/cifar10``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "toolkit" / "cifar10"


def _find_in(path: Path) -> Path | None:
    """Return the tarball or batches directory at ``path``, or None when it holds neither."""
    if path.is_file():
        # is_tarfile reads only the first block, so this stays cheap for the 170 MB archive.
        return path if tarfile.is_tarfile(path) else None
    if not path.is_dir():
        return None
    # Any member makes this the batches folder, so the reader can name the missing ones.
    if any((path / name).is_file() for name in MEMBER_NAMES):
        return path
    # An extracted copy reads faster than the tarball, so prefer it.
    if (path / BATCHES_DIR).is_dir():
        return path / BATCHES_DIR
    if (path / ARCHIVE_NAME).is_file():
        return path / ARCHIVE_NAME
    return None


def _require(path: Path, label: str) -> Path:
    """Resolve a user-given location or raise a DataError naming it; never falls through to download."""
    if not path.exists():
        raise DataError(f"{label} does not exist; expected {_EXPECTED}")
    found = _find_in(path)
    if found is None:
        raise DataError(f"{label} holds no CIFAR-10; expected {_EXPECTED}")
    return found


def download_archive(dest_dir: Path, *, url: str = CIFAR10_URL, md5: str = CIFAR10_MD5) -> Path:
    """Download ``url`` into ``dest_dir/cifar-10-python.tar.gz``, checking its md5.

    Writes to a temporary file in ``dest_dir`` and renames it only after the md5 matches, so an
    interrupted or corrupted download never leaves a file that looks complete. Raises DataError
    when the download fails or the md5 differs (the temporary file is deleted in both cases).
    """
    target = dest_dir / ARCHIVE_NAME
    logger.info("downloading %s to %s", url, target)

    def fetch(out: IO[bytes]) -> None:
        digest = hashlib.md5()
        with urllib.request.urlopen(url, timeout=60) as response:
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != md5:
            raise DataError(
                f"download from {url} has md5 {digest.hexdigest()}, expected {md5}; "
                f"the file is corrupted or not CIFAR-10: retry, or pass --data PATH to a copy you have"
            )

    try:
        write_atomic(target, fetch)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DataError(f"download from {url} failed: {exc}") from exc
    return target


def locate_cifar10(path: str | os.PathLike[str] | None = None, *, download: bool = True) -> Path:
    """Return the CIFAR-10 tarball or ``cifar-10-batches-py`` directory to read.

    Looks at ``path`` if given, else at ``$TOOLKIT_DATA`` if set (either one must hold the data:
    a wrong location is an error, not a reason to download), else in :func:`cache_dir`, downloading
    the official archive there when ``download`` is true. Raises DataError when nothing is found.
    """
    if path is not None:
        return _require(Path(path).expanduser(), f"data path {path}")
    env = os.environ.get(ENV_VAR)
    if env:
        return _require(Path(env).expanduser(), f"{ENV_VAR}={env}")
    cache = cache_dir()
    found = _find_in(cache) if cache.is_dir() else None
    if found is not None:
        return found
    looked = f"looked in: --data (not given), {ENV_VAR} (unset), cache {cache}"
    fix = f"pass --data PATH or set {ENV_VAR} to {_EXPECTED}"
    if not download:
        raise DataError(f"CIFAR-10 not found and download is off; {looked}; {fix}")
    try:
        return download_archive(cache, url=CIFAR10_URL, md5=CIFAR10_MD5)
    except DataError as exc:
        raise DataError(f"CIFAR-10 not found and {exc}; {looked}; {fix}") from exc
