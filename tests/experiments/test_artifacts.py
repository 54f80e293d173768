"""Default artifacts (a pair's profile, traces and branch records in the data directory) are made
again when the saved one is unusable (an interrupted save, a corrupt file, a record of an earlier
build of the pair), not only when missing."""

from __future__ import annotations

import json

import torch

from envs.arbitration import ArbitrationEnv
from envs.arbitration.record import record_env
from envs.pairs.registry import default_dtype
from envs.specdec.cost import ProfiledCost
from envs.specdec.pair import resolve_dtype
from experiments import artifacts, record_traces


def test_an_unreadable_default_trace_is_recorded_again(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPECGYM_DATA", str(tmp_path))
    recorded = []
    monkeypatch.setattr(record_traces, "record", lambda settings: recorded.append(settings.out))
    path = tmp_path / "traces" / "tiny-random__default__w4_d8_heldout.npz"
    path.parent.mkdir()
    path.write_bytes(b"PK\x03\x04 cut short")
    assert artifacts.default_traces("tiny-random", "heldout") == path
    assert recorded == [str(path)]
    assert f"making {path.name} again: cannot read trace" in capsys.readouterr().out


def test_a_default_branch_record_of_an_earlier_build_of_the_pair_is_recorded_again(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPECGYM_DATA", str(tmp_path))
    recorded = []
    monkeypatch.setattr(record_traces, "record_arbitration", lambda settings: recorded.append(settings.out))
    settings = record_traces.BranchSettings(pair="tiny-random", n_items=2, k=4, max_new_tokens=8)
    path = record_traces.default_branch_path(settings)
    env = ArbitrationEnv(pair="tiny-random", n_items=2, max_new_tokens=8, device="cpu")
    record_env(env, path, max_nodes=8, progress=False)
    args = ("tiny-random", "chain_sum", "train", 2, 4, 8, "cpu")
    assert artifacts.default_branches(*args) == path and recorded == []  # taken as it is
    monkeypatch.setattr("envs.arbitration.env.pair_version", lambda name: "0123456789abcdef")  # the pair built again
    assert artifacts.default_branches(*args) == path and recorded == [str(path)]
    assert f"making {path.name} again:" in capsys.readouterr().out


def test_an_unusable_default_profile_is_calibrated_again(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPECGYM_DATA", str(tmp_path))
    sound = ProfiledCost([32], [1, 2], [[0.01], [0.011]], [1, 2], [[0.05], [0.051]], {"pair": "smollm2-135m"})
    monkeypatch.setattr(artifacts, "shared_pair", lambda pair, device: pair)
    monkeypatch.setattr(artifacts, "calibrate", lambda pair, repeats: sound)
    dev = torch.device("cpu")
    path = artifacts.default_profile_path("smollm2-135m", dev, resolve_dtype(default_dtype("smollm2-135m"), dev))
    path.parent.mkdir(parents=True)
    path.write_text('{"kind": "profiled", "contexts": [32], "draft_')  # an old, interrupted save
    assert artifacts.default_cost_model("smollm2-135m", "cpu") == str(path)
    assert ProfiledCost.load(path) == sound
    out = capsys.readouterr().out
    assert f"making {path.name} again: cost profile" in out and "truncated or corrupt" in out
    assert artifacts.default_cost_model("smollm2-135m", "cpu") == str(path)  # now sound: kept
    assert "calibrating" not in capsys.readouterr().out and json.loads(path.read_text())["kind"] == "profiled"


def test_default_traces_of_a_named_mix_live_apart_and_record_its_split(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECGYM_DATA", str(tmp_path))
    recorded = []
    monkeypatch.setattr(record_traces, "record", lambda settings: recorded.append(settings))
    path = artifacts.default_traces("smollm2-135m", "train", prompts="mix:chat")
    assert path.name == "smollm2-135m__mix-chat__w4_d8_train.npz"
    assert path != artifacts.default_trace_path("smollm2-135m", "train")  # the default experiment's stays
    (settings,) = recorded
    assert (settings.prompts, settings.split, settings.out) == ("mix:chat", "train", str(path))


def test_train_refuses_prompts_without_splits_or_unknown_before_any_run(tmp_path):
    import pytest

    from envs.specdec import SpecGymError
    from experiments.train import main

    base = ["--env", "draft-verify", "--pair", "tiny-random", "--wandb-mode", "disabled", "--runs-dir", str(tmp_path)]
    with pytest.raises(SpecGymError, match="a .jsonl file has no train and held-out splits; record its traces"):
        main([*base, "--prompts", "chat.jsonl"])
    with pytest.raises(SpecGymError, match="unknown prompt mix 'nosuch'; choose one of mix:chat"):
        main([*base, "--prompts", "mix:nosuch"])
    assert not list(tmp_path.iterdir())
