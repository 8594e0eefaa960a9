"""toolkit.fileio: JSON written atomically through the project's one atomic writer."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolkit.fileio import write_json_atomic


def test_json_round_trips_and_replaces_the_old_file_whole(tmp_path: Path) -> None:
    target = write_json_atomic(tmp_path / "m.json", {"a": 1})
    assert target.read_text() == '{\n  "a": 1\n}\n'
    with pytest.raises(TypeError):
        write_json_atomic(target, {"a": object()})  # not JSON: fails before anything is written
    assert json.loads(target.read_text()) == {"a": 1}
    write_json_atomic(target, {"b": [1, 2]})
    assert json.loads(target.read_text()) == {"b": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]
