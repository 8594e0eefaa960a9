"""Tests for toolkit.data: locating, downloading, safely reading, splitting and batching CIFAR-10."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import struct
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import toolkit.data.locate as locate_module
from toolkit.data import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    download_archive,
    iterate_batches,
    load_cifar10,
    locate_cifar10,
    normalize,
    split_train_val,
)
from toolkit.errors import ConfigError, DataError

REAL_DATA = Path(os.environ.get("TOOLKIT_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data")
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TRAIN_PER_BATCH, TEST_COUNT = 4, 3


class _Py2StylePickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes bytes as Python 2 str opcodes (SHORT_BINSTRING/BINSTRING), as the real batch files do."""

    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def _save_bytes_as_str(self, obj: bytes) -> None:
        short = len(obj) < 256
        opcode = pickle.SHORT_BINSTRING + bytes([len(obj)]) if short else pickle.BINSTRING + struct.pack("<i", len(obj))
        self.write(opcode + obj)  # type: ignore[attr-defined]
        self.memoize(obj)  # type: ignore[attr-defined]

    dispatch[bytes] = _save_bytes_as_str  # type: ignore[assignment]


def py2_pickle(obj: object) -> bytes:
    """Pickle like the official files: protocol 2, bytes keys as str, ndarray via numpy.core.multiarray."""
    buffer = io.BytesIO()
    _Py2StylePickler(buffer, protocol=2).dump(obj)
    raw = buffer.getvalue()
    if b"numpy._core.multiarray\n" in raw:  # numpy >= 2 names its private module; the real files predate it
        raw = raw.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    return raw


def make_batches(root: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Write a tiny cifar-10-batches-py/ under ``root``; return the expected arrays."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train_x, train_y = [], []
    for i in range(1, 7):
        name, count = (f"data_batch_{i}", TRAIN_PER_BATCH) if i < 6 else ("test_batch", TEST_COUNT)
        data = rng.integers(0, 256, size=(count, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=count)]
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels,
            b"data": data,
            b"filenames": [f"img_{i}_{j}.png".encode() for j in range(count)],
        }
        (folder / name).write_bytes(py2_pickle(batch))
        if i < 6:
            train_x.append(data)
            train_y += labels
        else:
            test_x, test_y = data, labels
    meta = {b"num_cases_per_batch": TRAIN_PER_BATCH, b"label_names": [c.encode() for c in CLASSES], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(py2_pickle(meta))
    (folder / "readme.html").write_text("<html></html>")
    return {
        "train_x": np.concatenate(train_x),
        "train_y": np.array(train_y),
        "test_x": test_x,
        "test_y": np.array(test_y),
    }


def make_tarball(root: Path, seed: int = 0) -> tuple[Path, dict[str, np.ndarray]]:
    """Write ``root/cifar-10-python.tar.gz`` holding a tiny batches folder; return it and the arrays."""
    expected = make_batches(root / "src", seed)
    root.mkdir(parents=True, exist_ok=True)
    archive = root / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return archive, expected


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the user's env var or cache, and none can reach the network."""
    monkeypatch.delenv("TOOLKIT_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setattr(locate_module, "CIFAR10_URL", (tmp_path / "no-such-archive.tar.gz").as_uri())


def test_fixture_pickles_look_like_the_real_files(tmp_path: Path) -> None:
    raw = (make_tarball(tmp_path)[0].parent / "src" / "cifar-10-batches-py" / "test_batch").read_bytes()
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in raw
    assert pickle.SHORT_BINSTRING + bytes([4]) + b"data" in raw


@pytest.mark.parametrize("form", ["tarball", "dir-with-tarball", "dir-with-batches", "batches-dir"])
def test_reads_every_location_form(tmp_path: Path, form: str) -> None:
    archive, expected = make_tarball(tmp_path / "data")
    path = {
        "tarball": archive,
        "dir-with-tarball": archive.parent,
        "dir-with-batches": archive.parent / "src",
        "batches-dir": archive.parent / "src" / "cifar-10-batches-py",
    }[form]
    if form == "dir-with-tarball":
        (archive.parent / "src").rename(tmp_path / "elsewhere")  # leave only the tarball beside it
    data = load_cifar10(path, download=False)
    assert data.train_images.shape == (5 * TRAIN_PER_BATCH, 3, 32, 32)
    assert data.train_images.dtype == torch.uint8 and data.train_labels.dtype == torch.int64
    assert np.array_equal(data.train_images.numpy().reshape(-1, 3072), expected["train_x"])
    assert np.array_equal(data.train_labels.numpy(), expected["train_y"])
    assert np.array_equal(data.test_images.numpy().reshape(-1, 3072), expected["test_x"])
    assert np.array_equal(data.test_labels.numpy(), expected["test_y"])
    assert data.classes == CLASSES


def test_explicit_path_wins_over_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_archive, env_expected = make_tarball(tmp_path / "env", seed=1)
    arg_archive, arg_expected = make_tarball(tmp_path / "arg", seed=2)
    monkeypatch.setenv("TOOLKIT_DATA", str(env_archive.parent))
    assert locate_cifar10(arg_archive) == arg_archive
    assert locate_cifar10() == env_archive
    assert np.array_equal(load_cifar10().train_labels.numpy(), env_expected["train_y"])
    assert np.array_equal(load_cifar10(arg_archive).train_labels.numpy(), arg_expected["train_y"])


def _forbid_download(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> Path:
        raise AssertionError("must not download when a location was given")

    monkeypatch.setattr(locate_module, "download_archive", fail)


def test_wrong_env_var_is_an_error_not_a_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _forbid_download(monkeypatch)
    monkeypatch.setenv("TOOLKIT_DATA", str(tmp_path / "missing"))
    with pytest.raises(DataError, match=r"TOOLKIT_DATA=.*missing does not exist; expected cifar-10-python\.tar\.gz"):
        locate_cifar10()


def test_wrong_explicit_path_is_an_error_not_a_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _forbid_download(monkeypatch)
    with pytest.raises(DataError, match=r"data path .*nowhere does not exist; expected"):
        load_cifar10(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"data path .*empty holds no CIFAR-10; expected .*cifar-10-batches-py"):
        load_cifar10(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("not a tarball")
    with pytest.raises(DataError, match=r"notes\.txt holds no CIFAR-10"):
        load_cifar10(tmp_path / "notes.txt")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"definitely not a pickle", r"data_batch_3 is not a readable pickle .*expected a CIFAR-10 batch file"),
        (py2_pickle([1, 2, 3]), r"data_batch_3 holds a list, expected a dict"),
        (
            py2_pickle({b"pixels": np.zeros((2, 3072), np.uint8)}),
            r"data_batch_3 has keys .*expected b'data' and b'labels'",
        ),
        (
            py2_pickle({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}),
            r"data_batch_3: 'data' is a uint8 array of shape \(2, 100\), expected a uint8 array of shape \(N, 3072\)",
        ),
        (
            py2_pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}),
            r"data_batch_3: 'labels' is a list, expected a list of 2 ints in 0\.\.9",
        ),
    ],
    ids=["not-a-pickle", "not-a-dict", "wrong-keys", "wrong-shape", "label-out-of-range"],
)
def test_malformed_batch_names_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    make_batches(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(content)
    with pytest.raises(DataError, match=message):
        load_cifar10(tmp_path, download=False)


class _RunsShell:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (self.command,)


def test_restricted_unpickler_refuses_code(tmp_path: Path) -> None:
    make_batches(tmp_path)
    marker = tmp_path / "pwned"
    evil = {b"data": _RunsShell(f"touch {marker}"), b"labels": []}
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(py2_pickle(evil))
    with pytest.raises(DataError, match=r"refusing to unpickle (posix|nt|os)\.system from .*test_batch"):
        load_cifar10(tmp_path, download=False)
    assert not marker.exists()


def test_bad_member_inside_tarball_and_missing_member(tmp_path: Path) -> None:
    make_batches(tmp_path / "src")
    folder = tmp_path / "src" / "cifar-10-batches-py"
    (folder / "batches.meta").write_bytes(py2_pickle({b"label_names": [b"cat"]}))
    with tarfile.open(tmp_path / "bad.tar.gz", "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    with pytest.raises(DataError, match=r"bad\.tar\.gz:cifar-10-batches-py/batches\.meta: 'label_names'.*10 names"):
        load_cifar10(tmp_path / "bad.tar.gz")
    (folder / "batches.meta").write_bytes(py2_pickle({b"label_names": [c.encode() for c in CLASSES]}))
    (folder / "test_batch").unlink()
    with pytest.raises(DataError, match=r"lacks test_batch; expected cifar-10-batches-py/ with"):
        load_cifar10(folder)


def test_download_checks_md5_both_ways(tmp_path: Path) -> None:
    archive, _ = make_tarball(tmp_path / "server")
    payload = archive.read_bytes()
    good_md5 = hashlib.md5(payload).hexdigest()
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=rf"has md5 {good_md5}, expected 0{{32}}"):
        download_archive(cache, url=archive.as_uri(), md5="0" * 32)
    assert list(cache.iterdir()) == []  # temp file deleted, nothing that looks complete
    target = download_archive(cache, url=archive.as_uri(), md5=good_md5)
    assert target == cache / "cifar-10-python.tar.gz" and target.read_bytes() == payload
    assert list(cache.iterdir()) == [target]


def test_cache_fallback_downloads_then_reuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive, expected = make_tarball(tmp_path / "server")
    monkeypatch.setattr(locate_module, "CIFAR10_URL", archive.as_uri())
    monkeypatch.setattr(locate_module, "CIFAR10_MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    cached = tmp_path / "xdg-cache" / "toolkit" / "cifar10" / "cifar-10-python.tar.gz"
    assert np.array_equal(load_cifar10().test_labels.numpy(), expected["test_y"])
    assert cached.is_file()
    archive.unlink()  # a second call must use the cache, not the URL
    assert locate_cifar10() == cached


def test_offline_without_data_gives_one_clear_error(tmp_path: Path) -> None:
    cache = tmp_path / "xdg-cache" / "toolkit" / "cifar10"
    expected = r"download from file:.*failed.*TOOLKIT_DATA \(unset\).*cifar10.*--data PATH"
    with pytest.raises(DataError, match=expected) as info:
        load_cifar10()
    assert str(cache) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(DataError, match=r"download is off.*--data PATH or set TOOLKIT_DATA"):
        locate_cifar10(download=False)


def _indexed_images(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose every pixel equals their index, so pairing with labels can be checked."""
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 32, 32).contiguous()
    return images, torch.arange(n, dtype=torch.int64)


def test_split_is_disjoint_ten_percent_and_deterministic() -> None:
    images, labels = _indexed_images(200)
    train_x, train_y, val_x, val_y = split_train_val(images, labels)
    assert len(val_y) == 20 and len(train_y) == 180
    assert set(train_y.tolist()).isdisjoint(val_y.tolist())
    assert sorted(train_y.tolist() + val_y.tolist()) == list(range(200))
    assert torch.equal(train_x[:, 0, 0, 0].long(), train_y) and torch.equal(val_x[:, 2, 31, 31].long(), val_y)
    assert torch.equal(split_train_val(images, labels)[3], val_y)
    assert not torch.equal(split_train_val(images, labels, seed=1)[3], val_y)
    with pytest.raises(ConfigError, match=r"val_fraction 1\.5 of 200 images leaves an empty part"):
        split_train_val(images, labels, val_fraction=1.5)
    with pytest.raises(DataError, match=r"got 200 images but 3 labels"):
        split_train_val(images, labels[:3])


def test_normalize_math() -> None:
    batch = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 4, 4)
    out = normalize(batch, CIFAR10_MEAN, CIFAR10_STD)
    assert out.dtype == torch.float32 and out.shape == (2, 3, 4, 4)
    expected = [(0.0 - 0.4914) / 0.2470, (0.2 - 0.4822) / 0.2435, (1.0 - 0.4465) / 0.2616]
    assert torch.allclose(out[0, :, 0, 0], torch.tensor(expected), atol=1e-6)
    with pytest.raises(DataError, match=r"got a torch\.float32 tensor of shape \(2, 3, 4, 4\), expected uint8"):
        normalize(out, CIFAR10_MEAN, CIFAR10_STD)


def _random_images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 32, 32), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_without_augment_batches_are_exactly_the_normalized_inputs() -> None:
    images, labels = _random_images(10), torch.arange(10)
    batches = list(
        iterate_batches(
            images,
            labels,
            batch_size=4,
            shuffle=True,
            mean=CIFAR10_MEAN,
            std=CIFAR10_STD,
            generator=torch.Generator().manual_seed(0),
        )
    )
    assert [len(y) for _, y in batches] == [4, 4, 2]
    x, y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    assert sorted(y.tolist()) == list(range(10)) and y.tolist() != list(range(10))  # shuffled, complete
    assert torch.equal(x, normalize(images[y], CIFAR10_MEAN, CIFAR10_STD))


def _crops_of(image: torch.Tensor) -> list[torch.Tensor]:
    """Every crop/flip the augmentation may produce from one uint8 (3, 32, 32) image."""
    padded = F.pad(image, (4, 4, 4, 4))
    crops = [padded[:, dy : dy + 32, dx : dx + 32] for dy in range(9) for dx in range(9)]
    return crops + [crop.flip(-1) for crop in crops]


def test_augment_is_crop_and_flip_and_deterministic() -> None:
    images, labels = _random_images(16), torch.arange(16)

    def run(seed: int) -> torch.Tensor:
        batches = iterate_batches(
            images,
            labels,
            batch_size=16,
            shuffle=False,
            augment=True,
            mean=(0, 0, 0),
            std=(1 / 255, 1 / 255, 1 / 255),
            generator=torch.Generator().manual_seed(seed),
        )
        return next(iter(batches))[0]

    out = run(0)
    assert torch.equal(out, run(0)) and not torch.equal(out, run(1))
    assert not torch.equal(out, images.float())
    restored = out.round().to(torch.uint8)  # mean 0, std 1/255 undoes the scaling
    # Index into _crops_of: 9 * dy + dx, plus 81 when flipped (random pixels make the match unique).
    found = [
        next(k for k, crop in enumerate(_crops_of(image)) if torch.equal(out_image, crop))
        for image, out_image in zip(images, restored, strict=True)
    ]
    assert {k >= 81 for k in found} == {True, False}  # some flipped, some not
    assert len({k % 81 for k in found}) > 4  # offsets vary per image


def test_resize_and_argument_checks() -> None:
    images, labels = _random_images(3), torch.arange(3)
    base = normalize(images, CIFAR10_MEAN, CIFAR10_STD)
    up, _ = next(
        iter(
            iterate_batches(
                images, labels, batch_size=3, shuffle=False, mean=CIFAR10_MEAN, std=CIFAR10_STD, image_size=64
            )
        )
    )
    assert up.shape == (3, 3, 64, 64)
    assert torch.allclose(up, F.interpolate(base, size=(64, 64), mode="bilinear", align_corners=False))
    down, _ = next(
        iter(
            iterate_batches(
                images, labels, batch_size=3, shuffle=False, mean=CIFAR10_MEAN, std=CIFAR10_STD, image_size=16
            )
        )
    )
    assert torch.allclose(down, F.interpolate(base, size=(16, 16), mode="bilinear", antialias=True))
    with pytest.raises(ConfigError, match=r"batch_size is 0, expected a positive number"):
        iterate_batches(images, labels, batch_size=0, shuffle=False, mean=CIFAR10_MEAN, std=CIFAR10_STD)


@pytest.mark.slow
def test_real_cifar10() -> None:
    if not REAL_DATA.exists():
        pytest.skip(f"real CIFAR-10 not found at {REAL_DATA}")
    start = time.perf_counter()
    data = load_cifar10(REAL_DATA, download=False)
    print(f"loaded real CIFAR-10 in {time.perf_counter() - start:.1f} s")
    assert data.train_images.shape == (50_000, 3, 32, 32) and data.test_images.shape == (10_000, 3, 32, 32)
    assert data.train_labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert data.test_labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert data.classes == CLASSES
    assert torch.bincount(data.train_labels).tolist() == [5000] * 10
    assert torch.bincount(data.test_labels).tolist() == [1000] * 10
