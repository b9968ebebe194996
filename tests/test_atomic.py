"""Atomic writes: complete files only, with the permissions a plain write would give."""

from __future__ import annotations

import os
import stat

import pytest

from harness import atomic


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_atomic_file_mode_follows_umask(tmp_path, umask_022):
    target = tmp_path / "record.json"
    atomic.write_json(target, {"a": 1})
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_atomic_directory_mode_follows_umask(tmp_path, umask_022):
    target = tmp_path / "prepared"
    with atomic.atomic_directory(target) as folder:
        (folder / "table.parquet").write_bytes(b"x")
    assert stat.S_IMODE(target.stat().st_mode) == 0o755


def test_atomic_failure_keeps_old_file(tmp_path):
    target = tmp_path / "result.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.txt"]
