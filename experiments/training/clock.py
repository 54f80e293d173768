"""A run's wall time across interruptions: ``--resume`` adds to what the interrupted part spent.

Each timed span (a training stage, the whole run) accumulates its seconds in the run directory's
``clock.json`` when it ends, also when it ends in Ctrl-C, so a resumed run reports the time of
all its parts, and a stage finished before the interruption keeps its own time (resuming a
finished run re-evaluates it, and adds that time too).
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from envs.specdec.files import write_text_atomic


class RunClock:
    """Seconds per named span of one run directory, summed over every process that ran it."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / "clock.json"
        self.spent: dict[str, float] = {}
        if self.path.is_file():
            try:
                self.spent = json.loads(self.path.read_text())
            except json.JSONDecodeError:  # cut off mid-write: times are a report, never a reason to refuse a resume
                warnings.warn(f"{self.path} is unreadable; this run's earlier times are lost", stacklevel=2)
        self._started: dict[str, float] = {}

    @contextmanager
    def timing(self, name: str) -> Iterator[None]:
        """Time ``name`` for the block's length, saved when it exits (normally or not)."""
        self._started[name] = time.perf_counter()
        try:
            yield
        finally:
            self.spent[name] = self.seconds(name)
            del self._started[name]
            if self.path.parent.is_dir():  # a run refused before training has removed its directory
                # whole or not at all: a second Ctrl-C never leaves half a file
                write_text_atomic(self.path, json.dumps(self.spent, indent=1))

    def seconds(self, name: str) -> float:
        """``name``'s seconds so far: earlier processes' plus this one's running span."""
        running = time.perf_counter() - self._started[name] if name in self._started else 0.0
        return self.spent.get(name, 0.0) + running
