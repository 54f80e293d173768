"""train --vec-env ray: an SB3 VecEnv over Ray actors steps as DummyVecEnv does (auto-reset,
terminal_observation), live envs on it step as in-process ones, and a live training on it completes
and evaluates like a SubprocVecEnv one."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

# local Ray clusters: once per CI run (.ci/run), on the newest transformers, and alone (serial):
# their actors time calibrations and fill both cores
pytestmark = [pytest.mark.once, pytest.mark.serial]

ray = pytest.importorskip("ray", reason="the Ray tests need the ray extra: pip install -e .[ray]")

from stable_baselines3.common.env_util import make_vec_env  # noqa: E402
from stable_baselines3.common.monitor import Monitor  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv  # noqa: E402

from experiments.training.ppo import _make  # noqa: E402
from experiments.training.ray_vec_env import RayVecEnv  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def test_ray_vec_env_steps_as_dummy_vec_env_does():
    """3 CartPoles over 2 actors against DummyVecEnv, the same seeds and random actions: the same
    observations, rewards, dones and infos, across many auto-resets."""
    ray_env = make_vec_env("CartPole-v1", n_envs=3, seed=7, vec_env_cls=RayVecEnv, vec_env_kwargs={"workers": 2})
    dummy = make_vec_env("CartPole-v1", n_envs=3, seed=7, vec_env_cls=DummyVecEnv)
    try:
        assert len(ray_env.actors) == 2
        assert np.array_equal(ray_env.reset(), dummy.reset())
        rng = np.random.default_rng(0)
        ends = 0
        for _ in range(150):
            actions = rng.integers(0, 2, size=3)
            obs, rewards, dones, infos = ray_env.step(actions)
            obs_d, rewards_d, dones_d, infos_d = dummy.step(actions)
            assert np.array_equal(obs, obs_d) and np.array_equal(rewards, rewards_d)
            assert np.array_equal(dones, dones_d)
            for info, info_d, done in zip(infos, infos_d, dones, strict=True):
                assert ("terminal_observation" in info) == bool(done)
                if done:  # the episode's last observation; obs holds the next episode's first
                    assert np.array_equal(info["terminal_observation"], info_d["terminal_observation"])
                    assert {k: info["episode"][k] for k in "rl"} == {
                        k: info_d["episode"][k] for k in "rl"
                    }  # t: wall time
            ends += int(dones.sum())
        assert ends > 3  # the auto-reset was exercised
        assert ray_env.get_attr("spec", [2])[0].id == "CartPole-v1"
        ray_env.set_attr("marker", 5, indices=[0, 2])
        assert ray_env.get_attr("marker", [0, 2]) == [5, 5]
        assert ray_env.env_method("get_wrapper_attr", "marker", indices=[2]) == [5]
        assert ray_env.env_is_wrapped(Monitor) == [True] * 3
        assert ray_env.env_is_wrapped(gym.wrappers.RecordEpisodeStatistics) == [False] * 3
    finally:
        ray_env.close()
        dummy.close()


def live_envs(vec_env_cls: type, **vec_kwargs) -> object:
    kwargs = {"pair": "tiny-random", "backend": "live", "cost_model": "analytic", "split": "train"}
    return make_vec_env(
        functools.partial(_make, "SpecGym/DraftVerify-Draft-v0"),
        n_envs=3,
        seed=11,
        env_kwargs=kwargs,
        vec_env_cls=vec_env_cls,
        vec_env_kwargs=vec_kwargs or None,
    )


def test_live_envs_on_ray_step_as_in_process_ones():
    """Live DraftVerify envs (each actor holding the pair once) against in-process ones, the same
    seeds and actions: the same action masks, observations and rewards, bit for bit."""
    on_ray, local = live_envs(RayVecEnv, workers=2), live_envs(DummyVecEnv)
    try:
        assert np.array_equal(on_ray.reset(), local.reset())
        rng = np.random.default_rng(1)
        for _ in range(100):
            masks = np.stack(on_ray.env_method("action_masks"))
            assert np.array_equal(masks, np.stack(local.env_method("action_masks")))
            actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
            for a, b in zip(on_ray.step(actions), local.step(actions), strict=True):
                if isinstance(a, np.ndarray):
                    assert np.array_equal(a, b)
    finally:
        on_ray.close()
        local.close()


def train_live(runs: Path, vec_env: str, config: Path) -> Path:
    """A short live training of the depth role on tiny-random (analytic cost: deterministic)."""
    cmd = [
        *(sys.executable, "-m", "experiments.train", "--env", "draft-verify", "--pair", "tiny-random"),
        *("--backend", "live", "--roles", "draft", "--rounds", "1", "--timesteps", "256", "--n-envs", "3"),
        *("--config", str(config), "--runs-dir", str(runs), "--no-progress", "--vec-env", vec_env),
        *(["--workers", "2"] if vec_env == "ray" else []),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled", "TQDM_DISABLE": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = runs.iterdir()
    return run / "draft_round1.zip"


def test_live_training_on_ray_completes_and_evaluates_like_subprocess_training(tmp_path):
    """python -m experiments.train --backend live --vec-env ray --workers 2 trains whole rollouts, and
    its policy scores on held-out live episodes as one trained with SubprocVecEnv does."""
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.evaluation import evaluate_policy

    config = tmp_path / "small.yaml"
    config.write_text(
        "default: {n_steps: 64, batch_size: 64, n_epochs: 2, eval_freq: 100000, checkpoint_freq: 100000,"
        " policy_kwargs: {net_arch: [16]}}\n"
    )
    on_ray = MaskablePPO.load(train_live(tmp_path / "ray", "ray", config))
    in_subprocs = MaskablePPO.load(train_live(tmp_path / "subproc", "subproc", config))
    assert on_ray.num_timesteps == in_subprocs.num_timesteps == 384  # whole rollouts: 2 x 64 x 3 envs
    held_out = live_envs(DummyVecEnv)
    try:
        scores = [evaluate_policy(m, held_out, n_eval_episodes=6, deterministic=True)[0] for m in (on_ray, in_subprocs)]
    finally:
        held_out.close()
    assert scores[0] == pytest.approx(scores[1], rel=0.1)
