"""Read the CIFAR-10 python-version batches with a restricted unpickler into uint8 tensors."""

from __future__ import annotations

import io
import logging
import os
import pickle
import tarfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2 has no numpy._core
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]

from toolkit.data.locate import ARCHIVE_NAME, BATCHES_DIR, MEMBER_NAMES, locate_cifar10
from toolkit.errors import DataError

logger = logging.getLogger(__name__)

_PIXELS = 3 * 32 * 32
_NUM_CLASSES = 10
# Exactly the globals the real batch files reference (checked with pickletools): the `data`
# ndarray is rebuilt through these three. Files written by numpy >= 2 name numpy._core instead.
_ALLOWED_GLOBALS: dict[tuple[str, str], object] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


@dataclass(frozen=True, eq=False)
class Cifar10:
    """CIFAR-10 in memory: images uint8 (N, 3, 32, 32) RGB, labels int64 (N,), class names by label."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: tuple[str, ...]


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the numpy globals a CIFAR-10 batch needs and refuses the rest."""

    def __init__(self, raw: bytes, source: str) -> None:
        # encoding="bytes": the batches are Python 2 pickles whose str keys must stay bytes.
        super().__init__(io.BytesIO(raw), encoding="bytes")
        self._source = source

    def find_class(self, module: str, name: str) -> object:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DataError(
                f"refusing to unpickle {module}.{name} from {self._source}: a CIFAR-10 batch needs only "
                f"numpy arrays, lists, dicts and strings; use an untampered copy of {ARCHIVE_NAME}"
            ) from None


def _unpickle(raw: bytes, source: str) -> dict[object, object]:
    """Unpickle one member with the restricted unpickler; it must give a dict."""
    try:
        obj = _RestrictedUnpickler(raw, source).load()
    except DataError:
        raise
    except Exception as exc:  # garbage bytes can fail anywhere inside pickle's machinery
        raise DataError(
            f"{source} is not a readable pickle ({type(exc).__name__}: {exc}); expected a CIFAR-10 batch file"
        ) from exc
    if not isinstance(obj, dict):
        raise DataError(f"{source} holds a {type(obj).__name__}, expected a dict (a CIFAR-10 batch file)")
    return obj


def _describe(value: object) -> str:
    """Say what a value is, for error messages."""
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    return f"a {type(value).__name__}"


def _parse_batch(obj: dict[object, object], source: str) -> tuple[np.ndarray, np.ndarray]:
    """Check one batch dict and return (data uint8 (N, 3072), labels int64 (N,))."""
    if b"data" not in obj or b"labels" not in obj:
        keys = sorted(map(repr, obj))
        raise DataError(f"{source} has keys {keys}, expected b'data' and b'labels' (a CIFAR-10 batch file)")
    data, labels = obj[b"data"], obj[b"labels"]
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == _PIXELS):
        raise DataError(f"{source}: 'data' is {_describe(data)}, expected a uint8 array of shape (N, {_PIXELS})")
    label_array = np.array(labels) if isinstance(labels, list) else None
    if (
        label_array is None
        or label_array.shape != (len(data),)
        or label_array.dtype.kind not in "iu"
        or (label_array.size and (label_array.min() < 0 or label_array.max() >= _NUM_CLASSES))
    ):
        raise DataError(
            f"{source}: 'labels' is {_describe(labels)}, expected a list of {len(data)} ints in 0..{_NUM_CLASSES - 1}"
        )
    return data, label_array.astype(np.int64)


def _parse_meta(obj: dict[object, object], source: str) -> tuple[str, ...]:
    """Return the ten class names from batches.meta."""
    names = obj.get(b"label_names")
    if not (isinstance(names, list) and len(names) == _NUM_CLASSES and all(isinstance(n, bytes) for n in names)):
        raise DataError(f"{source}: 'label_names' is {_describe(names)}, expected a list of {_NUM_CLASSES} names")
    return tuple(n.decode("utf-8", errors="replace") for n in names)


def _read_members(location: Path) -> Iterator[tuple[str, bytes, str]]:
    """Yield (member name, raw bytes, source for messages) for each wanted member, reading each once."""
    if location.is_dir():
        for name in MEMBER_NAMES:
            if (location / name).is_file():
                yield name, (location / name).read_bytes(), str(location / name)
        return
    try:
        # One forward pass over the tar: members are read as the gzip stream reaches them.
        with tarfile.open(location, "r:*") as tar:
            for member in tar:
                member_path = PurePosixPath(member.name)
                if member.isfile() and member_path.parent.name == BATCHES_DIR and member_path.name in MEMBER_NAMES:
                    extracted = tar.extractfile(member)
                    assert extracted is not None  # isfile() members always have a file object
                    yield member_path.name, extracted.read(), f"{location}:{member.name}"
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{location} is not a readable tar archive ({exc}); expected {ARCHIVE_NAME}") from exc


def _to_tensors(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack batches into (images uint8 (N, 3, 32, 32), labels int64 (N,)); concatenate always copies."""
    images = np.concatenate([data for data, _ in parts]).reshape(-1, 3, 32, 32)  # (N, C, H, W)
    labels = np.concatenate([labels for _, labels in parts])
    return torch.from_numpy(images), torch.from_numpy(labels)


def load_cifar10(path: str | os.PathLike[str] | None = None, *, download: bool = True) -> Cifar10:
    """Load CIFAR-10 into memory from ``path``, ``$TOOLKIT_DATA`` or the user cache (see ``locate_cifar10``).

    Reads the tarball directly (no extraction) or an extracted ``cifar-10-batches-py`` directory.
    Raises DataError naming the file when a member is missing, not a pickle, or not the format.
    """
    location = locate_cifar10(path, download=download)
    start = time.perf_counter()
    batches: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    classes: tuple[str, ...] | None = None
    for name, raw, source in _read_members(location):
        obj = _unpickle(raw, source)
        if name == "batches.meta":
            classes = _parse_meta(obj, source)
        else:
            batches[name] = _parse_batch(obj, source)
    missing = [n for n in MEMBER_NAMES if n not in batches and not (n == "batches.meta" and classes)]
    if missing or classes is None:
        raise DataError(
            f"{location} lacks {', '.join(missing)}; expected {BATCHES_DIR}/ with {', '.join(MEMBER_NAMES)}"
        )
    train_images, train_labels = _to_tensors([batches[f"data_batch_{i}"] for i in range(1, 6)])
    test_images, test_labels = _to_tensors([batches["test_batch"]])
    logger.info(
        "read CIFAR-10 from %s: %d train, %d test images in %.1f s",
        location,
        len(train_images),
        len(test_images),
        time.perf_counter() - start,
    )
    return Cifar10(train_images, train_labels, test_images, test_labels, classes)
