"""experiments.training.clock: a run's seconds survive an interruption."""

from __future__ import annotations

import time

import pytest

from experiments.training.clock import RunClock


def test_spans_add_up_over_processes_and_interruptions(tmp_path):
    first = RunClock(tmp_path)
    with pytest.raises(KeyboardInterrupt), first.timing("stage"):
        time.sleep(0.05)
        raise KeyboardInterrupt  # Ctrl-C: the span's time is saved anyway
    interrupted = first.seconds("stage")
    assert interrupted >= 0.05
    resumed = RunClock(tmp_path)  # a new process reads what the first spent
    assert resumed.seconds("stage") == interrupted and resumed.seconds("other") == 0.0
    with resumed.timing("stage"):
        time.sleep(0.02)
        assert resumed.seconds("stage") >= interrupted + 0.02  # running spans count
    assert RunClock(tmp_path).seconds("stage") == resumed.seconds("stage") >= interrupted + 0.02


def test_a_removed_run_directory_is_not_recreated(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with RunClock(run).timing("run"):
        run.rmdir()  # as train does for input refused before training
    assert not run.exists()


def test_a_cut_off_clock_file_does_not_block_a_resume(tmp_path):
    (tmp_path / "clock.json").write_text('{"run": 1.')
    with pytest.warns(UserWarning, match="unreadable"):
        clock = RunClock(tmp_path)
    assert clock.seconds("run") == 0.0
    with clock.timing("run"):
        pass
    assert RunClock(tmp_path).seconds("run") >= 0.0 and not (tmp_path / "clock.tmp").exists()
