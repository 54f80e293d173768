"""ensure_built and the registry refuse a data directory a build could not save into, before any
work; processes that load a missing pair together build it once."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

from envs.pairs import build, load_pair
from envs.pairs.build import ensure_built
from envs.specdec.errors import SpecGymError


@pytest.fixture
def no_builds(monkeypatch):
    """Builders that fail the test if a build starts."""

    def started(*args, **kwargs):
        raise AssertionError("a build started before the directory was checked")

    monkeypatch.setitem(build.BUILDERS, "gsm", started)
    monkeypatch.setattr("envs.pairs.smollm2.build_target", started)


def test_a_build_into_a_read_only_data_directory_is_refused_up_front(tmp_path, monkeypatch, no_builds):
    (tmp_path / "file").write_text("a file, not a directory\n")  # unwritable below it, also for root
    with pytest.raises(SpecGymError, match=r"the pair directory .*/file/data/pairs/gsm is not writable; build into"):
        ensure_built("gsm", tmp_path / "file" / "data")
    monkeypatch.setenv("SPECGYM_DATA", str(tmp_path / "file" / "data"))
    with pytest.raises(SpecGymError, match=r"pairs/gsm is not writable; set SPECGYM_DATA to a writable directory"):
        ensure_built("gsm")
    # the default pair's target is fetched and converted into the data directory on first use
    with pytest.raises(SpecGymError, match=r"pairs/smollm2-135m is not writable; set SPECGYM_DATA"):
        load_pair("smollm2-135m", device="cpu")


def test_a_finished_build_in_a_read_only_directory_is_not_refused(tmp_path, monkeypatch):
    root = tmp_path / "data"
    (root / "pairs" / "gsm").mkdir(parents=True)
    monkeypatch.setattr(build, "is_built", lambda name, pair_dir: True)
    monkeypatch.setattr("os.access", lambda path, mode: False)  # read-only, and nothing to write
    # a finished build's builder only returns its paths
    monkeypatch.setitem(build.BUILDERS, "gsm", lambda pair_dir, *args: (pair_dir / "target", pair_dir / "draft"))
    assert ensure_built("gsm", root) == (root / "pairs" / "gsm" / "target", root / "pairs" / "gsm" / "draft")


def _build_if_missing(root: str, log: str) -> None:
    """What a loader does on a fresh data directory: build unless finished (slowly, so two
    unlocked processes would both start)."""
    os.environ["SPECGYM_DATA"] = root
    with build.build_lock():
        done = Path(root) / "built"
        if not done.exists():
            with open(log, "a") as f:
                f.write(f"{os.getpid()}\n")
            time.sleep(1.0)
            done.write_text("finished\n")


def test_processes_loading_a_missing_pair_together_build_it_once(tmp_path):
    # Ray workers of a first recording load the pair at the same moment: one builds, the others wait
    log = tmp_path / "builds.log"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_build_if_missing, args=(str(tmp_path / "data"), str(log))) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    assert len(log.read_text().split()) == 1


def test_load_pair_holds_the_build_lock_while_the_loader_runs(tmp_path, monkeypatch):
    from envs.pairs import registry

    monkeypatch.setenv("SPECGYM_DATA", str(tmp_path))
    seen = []

    def loader(device, dtype):
        seen.append(build._LOCKS[tmp_path].is_locked)
        return "pair"

    monkeypatch.setitem(registry.PAIRS, "gsm", replace(registry.PAIRS["gsm"], loader=loader))
    assert load_pair("gsm") == "pair" and seen == [True]
    assert not build._LOCKS[tmp_path].is_locked


def test_pair_version_names_the_build_a_load_takes(tmp_path, monkeypatch):
    from envs.pairs import pair_version
    from envs.pairs.registry import BUNDLED

    monkeypatch.setenv("SPECGYM_DATA", str(tmp_path))
    assert pair_version("tiny-random") is None and pair_version("no-such-pair") is None  # weights fixed by code
    bundled = pair_version("gsm")
    assert bundled is not None and len(bundled) == 16
    assert pair_version("gsm") == bundled  # read, not made up
    (tmp_path / "pairs" / "gsm").mkdir(parents=True)
    card = json.loads((BUNDLED / "gsm" / "recipe.json").read_text())
    (tmp_path / "pairs" / "gsm" / "recipe.json").write_text(json.dumps({**card, "seed": 7}))  # a build of its own
    assert pair_version("gsm") not in (None, bundled)
