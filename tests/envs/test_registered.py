"""Every registered SpecGym id: both env checkers, determinism under a seed, pickling, spec JSON."""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.registration import EnvSpec
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs  # noqa: F401 - registers the ids

REGISTERED = sorted(i for i in gym.registry if i.startswith("SpecGym/"))


def test_both_environments_registered():
    assert {"SpecGym/DraftVerify-v0", "SpecGym/Arbitration-v0"} <= set(REGISTERED)


@pytest.mark.parametrize("env_id", REGISTERED)
def test_checkers(env_id):
    env = gym.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
        sb3_check_env(env)


@pytest.mark.parametrize("env_id", REGISTERED)
def test_determinism_pickle_and_spec(env_id, play):
    env_a, env_b = gym.make(env_id), gym.make(env_id)
    obs_a, rew_a, _ = play(env_a, np.random.default_rng(1), seed=5, limit=40)
    obs_b, rew_b, _ = play(env_b, np.random.default_rng(1), seed=5, limit=40)
    assert rew_a == rew_b
    assert all(np.array_equal(x, y) for x, y in zip(obs_a, obs_b, strict=True))

    clone = pickle.loads(pickle.dumps(env_a))
    assert clone.unwrapped.spec.id == env_id
    assert np.array_equal(clone.reset(seed=5)[0], env_a.reset(seed=5)[0])

    spec_json = env_a.spec.to_json()
    again = gym.make(EnvSpec.from_json(spec_json))
    assert np.array_equal(again.reset(seed=5)[0], obs_a[0])
