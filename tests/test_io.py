"""mmie.io: atomic writes leave either the old content or the whole new one, and no temporary file."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from mmie.errors import DataError
from mmie.io import atomic_folder, atomic_path, atomic_writer, write_atomic


def _lines_then_failure() -> Iterator[str]:
    yield "first new line\n"
    yield "second new line\n"
    raise RuntimeError("the producer failed part-way")


def test_write_atomic_writes_text_and_bytes(tmp_path):
    write_atomic(tmp_path / "a.txt", "héllo\n")
    write_atomic(tmp_path / "b.bin", b"\x00\xff")
    assert (tmp_path / "a.txt").read_bytes() == "héllo\n".encode()
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\xff"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"]


def test_write_atomic_replaces_and_keeps_the_file_mode(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    path.chmod(0o640)
    write_atomic(path, "new")
    assert path.read_text() == "new"
    assert path.stat().st_mode & 0o777 == 0o640
    write_atomic(tmp_path / "fresh.txt", "x")
    assert (tmp_path / "fresh.txt").stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0600


def test_a_stream_failing_midway_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text("old content\n")
    with pytest.raises(RuntimeError, match="part-way"):
        with atomic_writer(path) as handle:
            for line in _lines_then_failure():
                handle.write(line)
    assert path.read_text() == "old content\n"
    assert [p.name for p in tmp_path.iterdir()] == ["data.jsonl"]


def test_a_failing_disk_is_a_data_error_and_the_old_file_stays(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    path.write_text("{}\n")

    def full_disk(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(DataError, match=r"metrics.json: cannot write: No space left on device"):
        write_atomic(path, '{"f1": 0.5}\n')
    assert path.read_text() == "{}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_no_such_folder_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot write here"):
        write_atomic(tmp_path / "missing" / "a.txt", "x")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_for_writers_that_open_by_name(tmp_path):
    path = tmp_path / "predictions.jsonl"
    path.write_text("old\n")
    with atomic_path(path) as temporary:
        assert temporary.parent == tmp_path and temporary.name.startswith(".predictions.jsonl.")
        temporary.write_text("new\n")
    assert path.read_text() == "new\n"
    with pytest.raises(RuntimeError):
        with atomic_path(path) as temporary:
            with open(temporary, "w") as handle:
                for line in _lines_then_failure():
                    handle.write(line)
    assert path.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.jsonl"]


def test_atomic_folder_replaces_a_folder_whole(tmp_path):
    model = tmp_path / "runs" / "model"
    with atomic_folder(model) as staging:  # parents created
        (staging / "config.json").write_text("{}")
        (staging / "old_only.bin").write_bytes(b"1")
    with atomic_folder(model) as staging:
        (staging / "config.json").write_text('{"v": 2}')
    assert sorted(p.name for p in model.iterdir()) == ["config.json"]  # nothing of the old folder left
    assert (model / "config.json").read_text() == '{"v": 2}'
    assert [p.name for p in model.parent.iterdir()] == ["model"]


def test_atomic_folder_failing_midway_leaves_the_old_folder_and_no_staging(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("old")
    with pytest.raises(RuntimeError, match="part-way"):
        with atomic_folder(model) as staging:
            with open(staging / "config.json", "w") as handle:
                for line in _lines_then_failure():
                    handle.write(line)
    assert (model / "config.json").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
