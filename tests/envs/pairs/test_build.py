"""ensure_built and the registry refuse a data directory a build could not save into, before any work."""

from __future__ import annotations

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
