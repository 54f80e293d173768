"""An SB3 ``VecEnv`` whose envs live in Ray actors (``train --vec-env ray --workers N``; needs ``.[ray]``).

Live envs hold the model pair. ``SubprocVecEnv`` puts a copy in every env's process; here each
actor builds its share of the envs in one process, where they share one copy of the pair
(:func:`envs.pairs.shared_pair`), and steps them as an SB3 ``DummyVecEnv`` (which does the
auto-reset and ``terminal_observation``). N envs over W actors need W copies, not N.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import ray
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from experiments.ray_workers import RayPool


# what the actors run on their DummyVecEnv (module functions: pickled by name, not by value)
def _reset(venv: DummyVecEnv, seed: int | None, options: list[dict]) -> tuple[VecEnvObs, list[dict]]:
    if seed is not None:
        venv.seed(seed)  # the group's first env's seed; VecEnv.seed numbers the rest seed + i, as in one process
    venv.set_options(options)
    return venv.reset(), venv.reset_infos


def _step(venv: DummyVecEnv, actions: np.ndarray) -> VecEnvStepReturn:
    return venv.step(actions)


def _get_attr(venv: DummyVecEnv, name: str, indices: list[int]) -> list[Any]:
    return venv.get_attr(name, indices)


def _set_attr(venv: DummyVecEnv, name: str, value: Any, indices: list[int]) -> None:
    venv.set_attr(name, value, indices)


def _env_method(venv: DummyVecEnv, name: str, indices: list[int], args: tuple, kwargs: dict) -> list[Any]:
    return venv.env_method(name, *args, indices=indices, **kwargs)


def _is_wrapped(venv: DummyVecEnv, wrapper: type[gym.Wrapper], indices: list[int]) -> list[bool]:
    return venv.env_is_wrapped(wrapper, indices)


def _close(venv: DummyVecEnv) -> None:
    venv.close()


class RayVecEnv(VecEnv):
    """``env_fns`` split into ``workers`` contiguous groups, one Ray actor (a ``DummyVecEnv``) each;
    ``address``: a Ray cluster (None: ``RAY_ADDRESS``, else a local Ray); ``threads`` per actor."""

    def __init__(
        self,
        env_fns: list[Callable[[], gym.Env]],
        workers: int = 1,
        address: str | None = None,
        threads: int = 1,
        device: str = "auto",
    ):
        from experiments.workers import check_workers, ray_address

        n = len(env_fns)
        check_workers(workers, address, device)
        workers = min(workers, n)
        bounds = np.linspace(0, n, workers + 1).round().astype(int)
        self.slices = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        setups = [functools.partial(DummyVecEnv, env_fns[part]) for part in self.slices]
        self.pool = RayPool(setups, workers=workers, address=ray_address(address), threads=threads, device=device)
        self.actors = list(self.pool.actors)  # group g lives in actor g
        try:
            spaces = self.pool.call(_spaces)
        except BaseException:
            self.pool.close()
            raise
        super().__init__(n, *spaces)
        self.actions = np.zeros(0)

    def _on(self, g: int, fn: Callable[..., Any], *args: Any) -> Any:
        return self.actors[g].call.remote(fn, *args)

    def _routed(self, indices: VecEnvIndices) -> list[tuple[int, list[int]]]:
        """(group, its local indices) for each group holding some of ``indices``."""
        wanted = set(self._get_indices(indices))
        routes = [
            (g, [i - part.start for i in range(part.start, part.stop) if i in wanted])
            for g, part in enumerate(self.slices)
        ]
        return [(g, local) for g, local in routes if local]

    def reset(self) -> VecEnvObs:
        refs = [self._on(g, _reset, self._seeds[part.start], self._options[part]) for g, part in enumerate(self.slices)]
        parts = [RayPool.get(ref) for ref in refs]
        self.reset_infos = [info for _, infos in parts for info in infos]
        self._reset_seeds()
        self._reset_options()
        return _concat_obs([obs for obs, _ in parts])

    def step_async(self, actions: np.ndarray) -> None:
        self.actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        refs = [self._on(g, _step, self.actions[part]) for g, part in enumerate(self.slices)]
        parts = [RayPool.get(ref) for ref in refs]
        obs = _concat_obs([p[0] for p in parts])
        rewards = np.concatenate([p[1] for p in parts])
        dones = np.concatenate([p[2] for p in parts])
        return obs, rewards, dones, [info for p in parts for info in p[3]]

    def _gather(self, fn: Callable[..., Any], indices: VecEnvIndices, first: Any, *rest: Any) -> list[Any]:
        refs = [self._on(g, fn, first, local, *rest) for g, local in self._routed(indices)]
        return [x for ref in refs for x in RayPool.get(ref)]

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return self._gather(_get_attr, indices, attr_name)

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        refs = [self._on(g, _set_attr, attr_name, value, local) for g, local in self._routed(indices)]
        RayPool.get(refs)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **kwargs: Any
    ) -> list[Any]:
        return self._gather(_env_method, indices, method_name, method_args, kwargs)

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return self._gather(_is_wrapped, indices, wrapper_class)

    def close(self) -> None:
        if self.pool.actors:
            with contextlib.suppress(ray.exceptions.RayActorError):  # an actor already gone has nothing to close
                RayPool.get([self._on(g, _close) for g in range(len(self.actors))])
        self.pool.close()


def _spaces(venv: DummyVecEnv) -> tuple[gym.Space, gym.Space]:
    return venv.observation_space, venv.action_space


def _concat_obs(parts: list[VecEnvObs]) -> VecEnvObs:
    if isinstance(parts[0], dict):
        return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    return np.concatenate(parts)
