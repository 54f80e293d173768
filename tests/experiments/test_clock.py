"""experiments.training.clock: a run's seconds survive an interruption."""

from __future__ import annotations

import types

import pytest

from envs.specdec.files import leftovers
from experiments.training import clock as clock_module
from experiments.training.clock import RunClock


class FakeTime:
    """``time.perf_counter`` that moves only when told: spans of known, exact lengths."""

    def __init__(self) -> None:
        self.now = 1000.0

    def perf_counter(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def fake_time(monkeypatch):
    fake = FakeTime()
    # the clock module's own ``time`` only: pytest's timing keeps the real one
    monkeypatch.setattr(clock_module, "time", types.SimpleNamespace(perf_counter=fake.perf_counter))
    return fake


def test_spans_add_up_over_processes_and_interruptions(tmp_path, fake_time):
    first = RunClock(tmp_path)
    with pytest.raises(KeyboardInterrupt), first.timing("stage"):
        fake_time.advance(3.0)
        raise KeyboardInterrupt  # Ctrl-C: the span's time is saved anyway
    fake_time.advance(60.0)  # between the processes: no span runs, nothing counts
    assert first.seconds("stage") == 3.0
    resumed = RunClock(tmp_path)  # a new process reads what the first spent
    assert resumed.seconds("stage") == 3.0 and resumed.seconds("other") == 0.0
    with resumed.timing("stage"):
        fake_time.advance(1.5)
        assert resumed.seconds("stage") == 4.5  # running spans count
        fake_time.advance(0.5)
    fake_time.advance(7.0)  # after the span: not counted
    assert resumed.seconds("stage") == RunClock(tmp_path).seconds("stage") == 5.0


def test_a_removed_run_directory_is_not_recreated(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with RunClock(run).timing("run"):
        run.rmdir()  # as train does for input refused before training
    assert not run.exists()


def test_a_cut_off_clock_file_does_not_block_a_resume(tmp_path, fake_time):
    (tmp_path / "clock.json").write_text('{"run": 1.')
    with pytest.warns(UserWarning, match="unreadable"):
        clock = RunClock(tmp_path)
    assert clock.seconds("run") == 0.0  # the cut-off file's times are dropped, not half-read
    with clock.timing("run"):
        fake_time.advance(2.5)
    # the file is whole again and holds this process's span alone; no temporary file left behind
    assert RunClock(tmp_path).seconds("run") == 2.5 and not leftovers(tmp_path / "clock.json")
