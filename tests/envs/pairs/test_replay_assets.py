"""The replay data bundled for smollm2-135m (SpecGym/DraftVerify-v1): what the card says it is, and small."""

from __future__ import annotations

import json

import pytest

from envs.pairs.registry import BUNDLED
from envs.pairs.replay_assets import REPLAY_ASSETS, bundled_profile, bundled_trace
from envs.specdec import SpecGymError
from envs.specdec.cost import ProfiledCost
from envs.specdec.trace import Trace
from envs.tasks.splits import split_seed

FOLDER = BUNDLED / REPLAY_ASSETS["smollm2-135m"][0]
PROMPTS = {"train": 48, "heldout": 24}


def test_the_bundle_is_small():
    total = sum(p.stat().st_size for p in FOLDER.iterdir())
    assert total < 4 * 2**20, f"{total / 2**20:.1f} MB"


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_traces_are_the_default_recording_of_their_split(split):
    path = bundled_trace("smollm2-135m", split, 4)
    meta = Trace.load_meta(path)
    assert meta == json.loads(path.with_suffix(".json").read_text())  # the readable sidecar agrees
    assert (meta["pair"], meta["width"], meta["max_depth"], meta["max_new_tokens"]) == ("smollm2-135m", 4, 8, 64)
    assert meta["split"] == split and meta["prompt_seed"] == split_seed(split) and meta["prompts"] is None
    trace = Trace.load(path)
    assert trace.n_prompts == PROMPTS[split] == meta["n_prompts"]


def test_train_and_heldout_prompts_differ():
    train, held = (Trace.load(bundled_trace("smollm2-135m", s, 4)) for s in ("train", "heldout"))
    train_prompts = {tuple(train.prompt(i).prompt) for i in range(train.n_prompts)}
    assert not any(tuple(held.prompt(i).prompt) in train_prompts for i in range(held.n_prompts))


def test_profile_names_its_device_and_loads():
    path = bundled_profile("smollm2-135m")
    profile = ProfiledCost.load(path)  # refused if its tables were unusable
    assert profile.meta["pair"] == "smollm2-135m" and profile.meta["dtype"] == "bfloat16"
    assert profile.meta["device"].startswith("cpu (AMD EPYC") and "cpu-amd-epyc" in path.name


def test_card_gives_the_recipe():
    card = (FOLDER / "README.md").read_text()
    for needed in ("python -m experiments.record_traces", "--split train", "--split heldout", "calibrat"):
        assert needed in card


def test_unbundled_pairs_are_refused_naming_the_fix():
    with pytest.raises(SpecGymError, match="no trace is bundled for pair 'gsm'.*record_traces"):
        bundled_trace("gsm", "heldout", 4)
