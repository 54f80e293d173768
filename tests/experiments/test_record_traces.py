"""``python -m experiments.record_traces --env arbitration``: records a usable branch record in chunks,
and an interrupted recording resumes from its last finished chunk to the same record."""

from __future__ import annotations

import inspect

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401 - registers the ids
from envs.arbitration import ArbitrationEnv
from envs.specdec.branches import ARRAYS, BranchTree
from experiments import record_traces

ARGS = ["--env", "arbitration", "--pair", "gsm", "--n-items", "6", "--chunk", "2", "--device", "cpu", "--threads", "1"]
TIMES = ("record_seconds", "recorded")  # what two recordings of the same items may differ in: the clock,
MEASURED = ("leaf_time",)  # and each leaf's measured seconds of drafting and verification


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("record") / "x.npz"
    assert record_traces.main([*ARGS, "--out", str(out)]) == out
    return out


def assert_same_record(a: BranchTree, b: BranchTree) -> None:
    for name in ARRAYS:
        x, y = a.arrays[name], b.arrays[name]
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert np.array_equal(x, y) if name not in MEASURED else (x > 0).all() and (y > 0).all(), name
    strip = lambda meta: {k: v for k, v in meta.items() if k not in TIMES}  # noqa: E731
    assert strip(a.meta) == strip(b.meta)


def test_records_a_replayable_record_and_leaves_no_parts(uninterrupted):
    tree = BranchTree.load(uninterrupted)
    assert tree.n_items == 6 and tree.meta["pair"] == "gsm" and tree.meta["max_nodes"] == 4096
    assert tree.meta["split"] == "train"  # the env's default split, so its default kwargs replay it
    assert tree.meta["n_nodes"] == tree.n_nodes > 0 and tree.meta["complete_items"] == int(tree.item_complete.sum())
    assert uninterrupted.with_suffix(".json").is_file()
    assert not uninterrupted.with_name("x.npz.parts").exists()
    env = gym.make("SpecGym/Arbitration-v0", n_items=6, device="cpu", backend="replay", traces=str(uninterrupted))
    env.reset(seed=0)
    assert not env.step(0)[3]


def interrupt_after(monkeypatch, n_calls: int) -> list[int]:
    """ArbitrationEnv.record_item raises KeyboardInterrupt on its call ``n_calls + 1``; the items it recorded."""
    original, calls = ArbitrationEnv.record_item, []

    def record_item(self, index, *args, **kwargs):
        if len(calls) == n_calls:
            raise KeyboardInterrupt
        calls.append(index)
        return original(self, index, *args, **kwargs)

    monkeypatch.setattr(ArbitrationEnv, "record_item", record_item)
    return calls


def count_calls(monkeypatch) -> list[int]:
    return interrupt_after(monkeypatch, 10**9)


def test_an_interrupted_recording_resumes_to_the_same_record(uninterrupted, tmp_path, monkeypatch):
    out = tmp_path / "x.npz"
    with monkeypatch.context() as m:
        interrupt_after(m, 3)  # the first chunk (items 0, 1) is saved; the second stops after item 2
        with pytest.raises(KeyboardInterrupt):
            record_traces.main([*ARGS, "--out", str(out)])
    parts = tmp_path / "x.npz.parts"
    assert sorted(p.name for p in parts.glob("*.npz")) == ["0000000.npz"] and not out.exists()
    calls = count_calls(monkeypatch)
    record_traces.main([*ARGS, "--out", str(out)])
    assert calls == [2, 3, 4, 5]  # the saved chunk is not recorded again
    assert not parts.exists()
    assert_same_record(BranchTree.load(out), BranchTree.load(uninterrupted))


def test_parts_of_another_recording_are_not_mixed_in(uninterrupted, tmp_path, monkeypatch):
    out = tmp_path / "x.npz"
    with monkeypatch.context() as m:
        interrupt_after(m, 2)
        with pytest.raises(KeyboardInterrupt):
            record_traces.main([*ARGS, "--max-nodes", "3", "--out", str(out)])  # another node budget
    assert (tmp_path / "x.npz.parts" / "0000000.npz").is_file()
    calls = count_calls(monkeypatch)
    record_traces.main([*ARGS, "--out", str(out)])
    assert calls == list(range(6))  # started over
    assert_same_record(BranchTree.load(out), BranchTree.load(uninterrupted))


def test_record_in_one_chunk_equals_chunks(uninterrupted, tmp_path):
    out = tmp_path / "one.npz"
    record_traces.main([*ARGS, "--chunk", "50", "--out", str(out)])  # the last --chunk counts
    assert_same_record(BranchTree.load(out), BranchTree.load(uninterrupted))


@pytest.mark.parametrize(("env", "split"), [("arbitration", "train"), ("draft-verify", "heldout")])
def test_default_split_is_the_one_each_env_reads_by_default(monkeypatch, env, split):
    """Arbitration replays train items by default (the env's default split); DraftVerify's traces
    default to held-out prompts, as before."""
    monkeypatch.setattr(record_traces, "record_arbitration", lambda settings: settings)
    monkeypatch.setattr(record_traces, "record", lambda settings: settings)
    assert record_traces.main(["--env", env]).split == split
    assert record_traces.main(["--env", env, "--split", "validation"]).split == "validation"
    assert inspect.signature(ArbitrationEnv).parameters["split"].default == record_traces.BranchSettings.split
