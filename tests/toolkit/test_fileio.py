"""Atomic writes: the user gets the whole file or the old one, with the permissions a plain open() gives."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from benchmarks.record import write_atomic as bench_write_atomic
from toolkit.fileio import write_atomic, write_json_atomic


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.parametrize("writer", [write_atomic, bench_write_atomic], ids=["toolkit", "benchmarks"])
def test_written_files_get_the_umask_mode_not_mkstemps_private_one(tmp_path: Path, umask_022, writer) -> None:
    path = writer(tmp_path / "sub" / "out.bin", lambda f: f.write(b"data"))
    assert path.read_bytes() == b"data"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # readable by the group and others, like open() would
    assert [p.name for p in path.parent.iterdir()] == ["out.bin"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = write_json_atomic(tmp_path / "m.json", {"a": 1})

    def boom(f) -> None:
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic(target, boom)
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]
