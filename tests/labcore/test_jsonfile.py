"""labcore.jsonfile: a reader sees the old document or the new one, and no temporary stays."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labcore.jsonfile import write_json_atomic, write_text_atomic


def test_writes_replace_the_document_whole(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    write_json_atomic(target, {"a": 1, "b": [1, 2]}, compact=True)
    assert target.read_text() == '{"a":1,"b":[1,2]}'
    write_json_atomic(target, {"b": 2, "a": 1}, indent=2, sort_keys=True, trailing_newline=True)
    assert target.read_text() == '{\n  "a": 1,\n  "b": 2\n}\n'
    assert json.loads(target.read_text()) == {"a": 1, "b": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_default_serialises_other_types(tmp_path: Path) -> None:
    target = tmp_path / "meta.json"
    write_json_atomic(target, {"path": tmp_path}, default=str)
    assert json.loads(target.read_text()) == {"path": str(tmp_path)}


def test_a_failed_replace_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "busy"
    target.mkdir()  # os.replace of a file onto a directory fails
    with pytest.raises(OSError):
        write_text_atomic(target, "new")
    assert target.is_dir()
    assert [p.name for p in tmp_path.iterdir()] == ["busy"]


def test_unserialisable_data_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    target.write_text("old")
    with pytest.raises(TypeError):
        write_json_atomic(target, {"x": object()})
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
