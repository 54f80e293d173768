"""DraftVerify under cost-profile families (``cost_family``) and the ``cost_features="profile"`` layout."""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.registration import EnvSpec
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from envs.specdec import SpecGymError
from envs.specdec.cost_family import FAMILIES
from envs.specdec.cycles import obs_layout

WIDTH = 3


def family_env(replay_env, role="draft", **kwargs):
    partner = None if role == "joint" else "oracle"
    return replay_env(role=role, width=WIDTH, cost_family="mixed", cost_features="profile", partner=partner, **kwargs)


@pytest.mark.parametrize("role", ["draft", "verify", "joint"])
def test_family_env_passes_the_checkers(role, replay_env):
    env = family_env(replay_env, role)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
        sb3_check_env(env)
    spec = EnvSpec.from_json(env.spec.to_json())
    assert spec.kwargs["cost_family"] == "mixed" and spec.kwargs["cost_features"] == "profile"
    clone = pickle.loads(pickle.dumps(env.unwrapped))
    assert np.array_equal(clone.reset(seed=2)[0], env.unwrapped.reset(seed=2)[0])


def test_default_layout_is_unchanged(replay_env, dv):
    env = replay_env(width=WIDTH)
    assert env.observation_space.shape == (7 + WIDTH + dv.max_depth * WIDTH + 8,)
    wide = replay_env(width=WIDTH, cost_features="profile")
    assert wide.observation_space.shape == (7 + WIDTH + dv.max_depth * WIDTH + 8 + dv.max_depth + 1,)


def test_episodes_draw_different_profiles_deterministically(replay_env, play):
    env = family_env(replay_env)
    costs = [env.reset(seed=None if i else 5)[1]["cost"] for i in range(12)]
    assert len({repr(c) for c in costs}) > 6 and len({c["kind"] for c in costs}) > 1
    again = [env.reset(seed=None if i else 5)[1]["cost"] for i in range(12)]
    assert again == costs
    # the episode itself is played under the drawn profile, and steps carry on as usual
    _, rewards, infos = play(env, np.random.default_rng(0), seed=7)
    assert infos[-1]["tokens_generated"] > 0 and all(np.isfinite(rewards))


@pytest.mark.parametrize("role", ["draft", "verify"])
def test_observation_describes_the_drawn_profile(role, replay_env, dv):
    env = replay_env(role=role, width=WIDTH, cost_family="gpu", cost_features="profile")
    lay = obs_layout(dv.max_depth, WIDTH, "profile")
    seen = set()
    for seed in range(4):
        obs, _ = env.reset(seed=seed)
        src = env.unwrapped.source
        cost, ctx = src.cost, src.context_len
        step = cost.verify_time(1, ctx)
        assert obs[lay["draft_one_cost"]][0] == pytest.approx(cost.draft_time(1, ctx) / step, rel=1e-5)
        curve = [cost.verify_time(1 + level * WIDTH, ctx) / step for level in range(1, dv.max_depth + 1)]
        assert obs[lay["verify_curve"]] == pytest.approx(curve, rel=1e-5)
        assert obs[lay["draft_cost"]][0] == pytest.approx(cost.draft_time(WIDTH, ctx) / step, rel=1e-5)
        seen.add(round(float(obs[lay["draft_one_cost"]][0]), 5))
    assert len(seen) == 4  # four draws, four different draft costs seen


def test_best_static_rate_is_each_draws_own(replay_env):
    from envs.specdec.schedules import best_static_rate

    env = family_env(replay_env, reward="net_tokens", rate="best_static")
    rates = set()
    for seed in range(3):
        env.reset(seed=seed)
        src = env.unwrapped.source
        assert env.unwrapped.rate == pytest.approx(best_static_rate(src, src.n_prompts))  # the fixture's 3 < 8 prompts
        rates.add(env.unwrapped.rate)
    assert len(rates) == 3


def test_oracle_partner_replans_under_each_draw(replay_env):
    """The oracle partner's plans are made under the episode's profile, not the first one's."""
    from envs.specdec.oracle import Oracle

    env = replay_env(role="verify", width=WIDTH, cost_family="gpu", partner="oracle-depth")
    env.reset(seed=0)
    partner = env.unwrapped.partner
    assert isinstance(partner, Oracle)
    first = {k: v[0].copy() for k, v in partner._solved.items()}
    env.reset(seed=1)
    later = {k: v[0] for k, v in partner._solved.items()}
    assert first and later and all(not np.array_equal(first[k], later[k]) for k in set(first) & set(later))


def test_replay_matches_live_under_a_family(live_kwargs, trace_path, dv, play):
    common = {"role": "draft", "width": WIDTH, "cost_family": "gpu-perturbed", "cost_features": "profile"}
    live = gym.make("SpecGym/DraftVerify-v0", **common, **live_kwargs, n_prompts=len(dv.prompts))
    replay = gym.make(
        "SpecGym/DraftVerify-v0",
        **common,
        backend="replay",
        traces=trace_path(WIDTH),
        max_depth=dv.max_depth,
        max_new_tokens=live_kwargs["max_new_tokens"],
    )
    for index in range(len(dv.prompts)):
        obs_l, rew_l, info_l = play(live, np.random.default_rng(index), seed=index, index=index)
        obs_r, rew_r, info_r = play(replay, np.random.default_rng(index), seed=index, index=index)
        assert rew_l == rew_r and info_l == info_r
        assert all(np.allclose(x, y, atol=1e-6) for x, y in zip(obs_l, obs_r, strict=True))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cost_family": "tpu"}, f"unknown cost family 'tpu'; choose one of {', '.join(FAMILIES)}"),
        ({"cost_family": "gpu", "cost_model": "measured"}, "predictive cost models"),
        ({"cost_features": "all"}, "unknown cost_features 'all'; choose one of ratios, profile"),
    ],
)
def test_bad_family_arguments(kwargs, message, live_kwargs):
    with pytest.raises(SpecGymError, match=message):
        gym.make("SpecGym/DraftVerify-v0", **{**live_kwargs, **kwargs})
