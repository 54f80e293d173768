"""SpecGym/DraftVerify-v1: the real pair (smollm2-135m) on replay out of the box, from the bundled
traces and cost profile: no model load, no network. (Both env checkers, determinism, pickling and
the spec run on every registered id, v1 included, in tests/envs/test_registered.py.)"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401 - registers the ids
from envs.draft_verify import STOP
from envs.pairs.replay_assets import bundled_profile, bundled_trace
from envs.specdec import SpecGymError
from envs.specdec.cost import ProfiledCost


def test_v1_steps_real_smollm2_decisions_with_no_model_and_no_network(offline_and_modelless):
    env = gym.make("SpecGym/DraftVerify-v1")
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    obs, reward, terminated, truncated, info = env.step(STOP)
    assert reward > 0 and info["new_tokens"] >= 1 and not truncated
    source = env.unwrapped.source
    assert source.trace.meta["pair"] == "smollm2-135m" and source.trace.meta["split"] == "heldout"
    assert (source.width, source.max_depth) == (4, 8)
    assert isinstance(source.cost, ProfiledCost) and source.cost.meta["pair"] == "smollm2-135m"


def test_v1_train_split_and_other_roles(offline_and_modelless):
    train = gym.make("SpecGym/DraftVerify-v1", split="train")
    held = gym.make("SpecGym/DraftVerify-v1")
    assert train.unwrapped.n_prompts == 48 and held.unwrapped.n_prompts == 24
    verify = gym.make("SpecGym/DraftVerify-v1", role="verify")
    verify.reset(seed=1)
    _, reward, *_ = verify.step(int(np.flatnonzero(verify.unwrapped.action_masks())[-1]))
    assert reward > 0


def test_v0_ids_keep_their_meaning():
    assert gym.spec("SpecGym/DraftVerify-v0").kwargs == {}
    assert gym.spec("SpecGym/DraftVerify-v1").kwargs == {
        "pair": "smollm2-135m",
        "backend": "replay",
        "traces": "bundled",
        "width": 4,
        "cost_model": "bundled",
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 2}, "no bundled trace of smollm2-135m at width=2"),
        ({"pair": "gsm"}, "is bundled for pair 'gsm'"),
        ({"traces": None}, "backend='replay' needs traces=FILE.npz"),
    ],
)
def test_v1_bad_arguments_name_the_fix(kwargs, message):
    with pytest.raises(SpecGymError, match=message):
        gym.make("SpecGym/DraftVerify-v1", **kwargs)


def test_bundled_files_resolve():
    assert bundled_trace("smollm2-135m", "heldout", 4).name == "w4_d8_heldout.npz"
    assert bundled_profile("smollm2-135m").is_file()


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("draft-verify-v1", {}), ("draft-verify-v1-mixed", {"cost_features": "profile", "cost_family": "mixed"})],
)
def test_the_published_policies_partner_v1_by_name(name, kwargs):
    """The shipped co-adaptive pairs (envs/policies): the depth env gets the size policy as its partner,
    and the card's settings are the ones it was trained with."""
    from envs.published import manifest, published_names

    assert name in published_names()
    trained = manifest(name)["env_kwargs"]
    assert trained["pair"] == "smollm2-135m" and trained["cost_model"] == "bundled"
    assert {k: trained[k] for k in kwargs} == kwargs
    env = gym.make("SpecGym/DraftVerify-v1", partner=name, **kwargs)
    env.reset(seed=0)
    for _ in range(20):
        _, reward, terminated, truncated, _ = env.step(1)
        assert np.isfinite(reward)
        if terminated or truncated:
            env.reset()
