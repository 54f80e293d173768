"""Folders written whole or not at all (staged_dir), as files are (write_atomic)."""

from __future__ import annotations

import pytest

from envs.specdec.files import leftovers, staged_dir


def test_a_staged_folder_replaces_the_old_one_only_when_finished(tmp_path):
    path = tmp_path / "model"
    with staged_dir(path) as staging:
        (staging / "weights").write_text("v1")
    assert (path / "weights").read_text() == "v1" and not leftovers(path)
    with pytest.raises(KeyboardInterrupt), staged_dir(path) as staging:
        (staging / "weights").write_text("half")
        raise KeyboardInterrupt  # Ctrl-C mid-save
    assert (path / "weights").read_text() == "v1" and not leftovers(path)  # the old folder, no temporary one
    with staged_dir(path) as staging:
        (staging / "weights").write_text("v2")
    assert sorted(p.name for p in path.iterdir()) == ["weights"] and (path / "weights").read_text() == "v2"


def test_a_killed_writers_leftover_is_removed_by_the_next(tmp_path):
    path = tmp_path / "model"
    killed = tmp_path / ".model.abc123.part"  # what a SIGKILL mid-save leaves
    killed.mkdir()
    (killed / "weights").write_text("half")
    assert leftovers(path) == [killed]
    with staged_dir(path) as staging:
        (staging / "weights").write_text("whole")
    assert not leftovers(path) and (path / "weights").read_text() == "whole"
