"""Atomic writes (one implementation for every package): the user gets the whole file or the old one,
with the permissions a plain open() gives."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from runtime._fileio import write_atomic


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_written_files_get_the_umask_mode_not_mkstemps_private_one(tmp_path: Path, umask_022) -> None:
    path = write_atomic(tmp_path / "sub" / "out.bin", lambda f: f.write(b"data"))
    assert path.read_bytes() == b"data"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # readable by the group and others, like open() would
    assert [p.name for p in path.parent.iterdir()] == ["out.bin"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = write_atomic(tmp_path / "m.bin", lambda f: f.write(b"old"))

    def boom(f) -> None:
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic(target, boom)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.bin"]


def test_check_sees_the_complete_file_and_a_failed_check_keeps_the_old_one(tmp_path: Path) -> None:
    target = write_atomic(tmp_path / "m.bin", lambda f: f.write(b"old"))
    seen: list[bytes] = []

    def refuse(temp: Path) -> None:
        seen.append(temp.read_bytes())
        assert temp.parent == tmp_path and temp != target
        raise ValueError("not valid")

    with pytest.raises(ValueError, match="not valid"):
        write_atomic(target, lambda f: f.write(b"new bytes"), check=refuse)
    assert seen == [b"new bytes"]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.bin"]
