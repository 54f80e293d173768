"""One MaskablePPO training run on a registered env: vectorised envs, eval and checkpoint
callbacks, W&B, and resumable checkpoints (SIGINT saves one before exiting)."""

from __future__ import annotations

import contextlib
import functools
import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.callbacks import MaskableEvalCallback
from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

import envs  # noqa: F401  (registers the SpecGym ids in this process and in subprocesses)
from envs.specdec.errors import SpecGymError
from experiments.training.config import split
from experiments.training.tracking import tensorboard_dir


class TrainingInterrupted(KeyboardInterrupt):
    """Raised after a SIGINT once a checkpoint is on disk; carries where it went."""

    def __init__(self, checkpoint: Path):
        super().__init__(str(checkpoint))
        self.checkpoint = checkpoint


def latest_checkpoint(directory: Path, prefix: str) -> tuple[Path | None, int]:
    """The newest ``{prefix}_{steps}_steps.zip`` (CheckpointCallback's naming) and its steps; (None, 0)
    when there is none (a Ctrl-C before the first rollout saves one of 0 steps: that one counts)."""
    best: tuple[Path | None, int] = (None, 0)
    for path in directory.glob(f"{prefix}_*_steps.zip"):
        match = re.fullmatch(rf"{re.escape(prefix)}_(\d+)_steps\.zip", path.name)
        if match and (best[0] is None or int(match[1]) > best[1]):
            best = (path, int(match[1]))
    return best


def trained_timesteps(policy: Path) -> int:
    """The environment steps a saved policy trained for (SB3's ``num_timesteps``, kept in the
    .zip's ``data``): PPO collects whole rollouts, so this is the budget rounded up to
    ``n_steps x n_envs`` steps, and at least that."""
    with zipfile.ZipFile(policy) as archive:
        return int(json.loads(archive.read("data"))["num_timesteps"])


@dataclass(frozen=True)
class VecSettings:
    """How the envs are vectorised: ``kind`` auto | dummy | subproc | ray; for ray, the actors
    (``workers``), the cluster (``address``) and torch threads per actor."""

    kind: str = "auto"
    workers: int | None = None
    address: str | None = None
    threads: int = 1


def vec_env_class(env_kwargs: dict[str, Any], n_envs: int, kind: str = "auto") -> type[VecEnv]:
    """``auto``: live envs (DraftVerify's live backend, Arbitration) hold models and spend their time in
    torch: one process each; replay steps are microseconds, where subprocess round trips would dominate.
    ``ray``: the envs in Ray actors, each holding one copy of the pair for its share of the envs."""
    if kind == "ray":
        from experiments.training.ray_vec_env import RayVecEnv

        return RayVecEnv
    if kind in ("dummy", "subproc"):
        return DummyVecEnv if kind == "dummy" or n_envs == 1 else SubprocVecEnv
    live = env_kwargs.get("backend", "live") == "live"
    return SubprocVecEnv if live and n_envs > 1 else DummyVecEnv


def make_envs(
    env_id: str,
    env_kwargs: dict[str, Any],
    n_envs: int,
    seed: int,
    vec_cls: type[VecEnv],
    vec: VecSettings = VecSettings(),
) -> VecEnv:
    ray_kwargs = {"workers": vec.workers, "address": vec.address, "threads": vec.threads}
    # a callable, not the id: given an id, make_vec_env asks for render_mode="rgb_array", which our envs
    # do not render, and gymnasium warns once per env
    return make_vec_env(
        functools.partial(_make, env_id),
        n_envs=n_envs,
        seed=seed,
        env_kwargs=env_kwargs,
        vec_env_cls=vec_cls,
        vec_env_kwargs={**ray_kwargs, "device": env_kwargs.get("device", "auto")} if vec.kind == "ray" else None,
    )


def _make(env_id: str, **kwargs: Any) -> gym.Env:
    """``gym.make`` from this module, so a subprocess unpickling it imports ``envs`` (the ids)."""
    return gym.make(env_id, **kwargs)


def train(
    env_id: str,
    env_kwargs: dict[str, Any],
    config: dict[str, Any],
    out_dir: Path,
    *,
    name: str,
    seed: int,
    resume: bool = False,
    tracking: bool = False,
    progress: bool = True,
    warm_start: Callable[[MaskablePPO], None] | None = None,
    vec: VecSettings = VecSettings(),
) -> Path:
    """Train (or continue) one policy; returns the saved ``{name}.zip``. ``warm_start(model)``
    runs once on a new model before PPO (not on a resumed one)."""
    ppo_kwargs, run = split(config)
    final = out_dir / f"{name}.zip"
    if resume and final.exists():
        return final  # this stage finished before the interruption
    ckpt_dir = out_dir / "checkpoints"
    checkpoint, done_steps = latest_checkpoint(ckpt_dir, name) if resume else (None, 0)
    if resume and checkpoint is None and list(tensorboard_dir(out_dir).glob(f"{name}_*")):
        # the stage began (its TensorBoard log is there) but neither its checkpoints nor its policy
        # are: training it again from step 0 would pass off a new stage as the resumed one
        raise SpecGymError(
            f"{out_dir} has no checkpoints for stage {name} and no saved policy ({name}.zip); start a new "
            f"run or restore {ckpt_dir}"
        )
    n_envs = int(run.get("n_envs", 1))
    vec_cls = vec_env_class(env_kwargs, n_envs, vec.kind)
    if vec_cls is SubprocVecEnv:
        # one env built (and dropped) in this process first, so bad env arguments end here in one
        # clear error rather than in tracebacks from the worker processes
        _make(env_id, **env_kwargs).close()
    # the eval env wrapped as the training envs are: EvalCallback warns when the two types differ
    eval_env = make_envs(env_id, env_kwargs, 1, seed + 10_000, vec_cls, vec)
    try:
        venv = make_envs(env_id, env_kwargs, n_envs, seed, vec_cls, vec)
    except BaseException:
        eval_env.close()  # its worker process, when it has one
        raise
    # one TensorBoard root per run, one directory below it per stage (tb_log_name): see tracking
    tb_root = str(tensorboard_dir(out_dir))
    if checkpoint is not None:
        model = MaskablePPO.load(checkpoint, env=venv, tensorboard_log=tb_root)
    else:
        ppo_kwargs.setdefault("policy", "MlpPolicy")
        model = MaskablePPO(env=venv, seed=seed, verbose=0, tensorboard_log=tb_root, **ppo_kwargs)
        if warm_start is not None:
            warm_start(model)
    callbacks = [
        CheckpointCallback(
            save_freq=max(int(run.get("checkpoint_freq", 10_000)) // n_envs, 1),
            save_path=str(ckpt_dir),
            name_prefix=name,
        ),
        MaskableEvalCallback(
            eval_env,
            eval_freq=max(int(run.get("eval_freq", 5_000)) // n_envs, 1),
            n_eval_episodes=int(run.get("n_eval_episodes", 5)),
            log_path=str(out_dir / "eval" / name),
            best_model_save_path=None,
            verbose=0,
        ),
    ]
    if tracking:
        from wandb.integration.sb3 import WandbCallback

        callbacks.append(WandbCallback(verbose=0))
    total = int(run.get("n_timesteps", 10_000))
    try:
        model.learn(
            total_timesteps=max(total - done_steps, 0),
            callback=CallbackList(callbacks),
            reset_num_timesteps=checkpoint is None,
            tb_log_name=name,
            progress_bar=progress,
        )
    except KeyboardInterrupt:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        saved = ckpt_dir / f"{name}_{model.num_timesteps}_steps.zip"
        model.save(saved)
        raise TrainingInterrupted(saved) from None
    finally:
        for vec in (venv, eval_env):
            # after Ctrl-C in a terminal the subprocess workers got it too and are already gone
            with contextlib.suppress(EOFError, BrokenPipeError, ConnectionError):
                vec.close()
    model.save(final)
    return final
