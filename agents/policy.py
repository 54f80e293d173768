"""One interface for every DraftVerify decision-maker: baselines, the oracle, saved SB3 policies.

A :class:`Policy` is asked, on a :class:`~envs.specdec.cycles.CycleSource` (live engine or
trace replay), at three points of each cycle:

- ``plan(source)``: at cycle start, before drafting (schedules and the joint role decide here);
- ``keep_drafting(source)``: after each draft forward (depth); the caller forces a stop at
  ``source.cap``;
- ``verify_size(source)``: after drafting, how many of the ``source.n_nodes`` drafted nodes
  to verify (top ones by cumulative draft log-prob);

and told the outcome with ``observe(result)``. :func:`rollout` plays one generation with it;
DraftVerify uses the same calls for its partner.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from envs.specdec.cycles import ROLES, CycleResult, CycleSource

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm
from envs.specdec.errors import SpecGymError


class Policy:
    """Defaults: draft one token, verify everything drafted."""

    name = "policy"

    def reset(self) -> None:
        """A new generation starts."""

    def plan(self, source: CycleSource) -> None:
        """A cycle starts (``source.depth == 0``)."""

    def keep_drafting(self, source: CycleSource) -> bool:
        return False

    def verify_size(self, source: CycleSource) -> int:
        return source.n_nodes

    def observe(self, result: CycleResult) -> None:
        """The cycle's outcome."""


@dataclass
class EpisodeStats:
    """One generation under a policy; times from the source's cost model."""

    prompt_index: int
    tokens: int
    time: float
    target_time: float  # target-only decoding of the same tokens, same cost model
    cycles: int
    accepted: int  # accepted draft tokens (appended)
    drafted: int  # draft forwards

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.time

    @property
    def speedup(self) -> float:
        return self.target_time / self.time

    @property
    def mean_accepted_length(self) -> float:
        """Tokens per target forward (accepted + bonus, averaged over cycles)."""
        return self.tokens / self.cycles


def run_cycle(policy: Policy, source: CycleSource) -> CycleResult:
    """One cycle: plan, draft while the policy says so (at least once, at most ``cap``), verify."""
    policy.plan(source)
    source.begin_cycle()
    source.draft_step()
    while source.depth < source.cap and policy.keep_drafting(source):
        source.draft_step()
    result = source.finish_cycle(int(policy.verify_size(source)))
    policy.observe(result)
    return result


def rollout(policy: Policy, source: CycleSource, prompt_index: int) -> EpisodeStats:
    """Generate for one prompt with ``policy`` making every decision."""
    source.start(prompt_index)
    policy.reset()
    stats = EpisodeStats(prompt_index, 0, 0.0, 0.0, 0, 0, 0)
    while not source.done:
        r = run_cycle(policy, source)
        stats.tokens += r.new_tokens
        stats.time += r.time
        stats.target_time += r.target_time
        stats.cycles += 1
        stats.accepted += r.accepted_len
        stats.drafted += r.depth
    return stats


def tokens_per_s(policy: Policy, source: CycleSource, n_prompts: int | None = None) -> float:
    """Long-run tokens/s of ``policy`` over the first ``n_prompts`` of ``source`` (all by default):
    total tokens over total time, so long generations weigh more than in a mean of rates."""
    runs = [rollout(policy, source, i) for i in range(source.n_prompts if n_prompts is None else n_prompts)]
    return sum(r.tokens for r in runs) / sum(r.time for r in runs)


class SB3Policy(Policy):
    """A saved Stable-Baselines3 policy (``PPO`` or sb3-contrib ``MaskablePPO`` .zip) in one role.

    It reads the same observation and action mask DraftVerify gives it in that role, so a depth
    policy trained with ``role="draft"`` can be the partner of a size policy and vice versa.
    """

    def __init__(self, path: str | Path | BaseAlgorithm, role: str):
        """``path``: a saved .zip, or a model in memory (e.g. one just trained)."""
        if role not in ROLES:
            raise SpecGymError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
        if isinstance(path, str | Path):
            path = Path(path)
            if not path.is_file():
                raise SpecGymError(f"saved policy {str(path)!r} not found; pass the .zip a training run saved")
            (self.model, self.maskable), self.name = load_sb3(path), f"sb3:{path.name}"
        else:
            from sb3_contrib import MaskablePPO

            self.model, self.maskable, self.name = path, isinstance(path, MaskablePPO), "sb3"
        self.role = role
        self._planned: tuple[int, int] | None = None

    def _act(self, source: CycleSource) -> int:
        obs = source.observation()
        if obs.shape != self.model.observation_space.shape:
            raise SpecGymError(
                f"saved policy expects observations of shape {self.model.observation_space.shape}, the env "
                f"gives {obs.shape}: use the max_depth and width it was trained with"
            )
        kwargs = {"action_masks": source.action_mask(self.role)} if self.maskable else {}
        action, _ = self.model.predict(obs, deterministic=True, **kwargs)
        return int(np.asarray(action).item())

    def plan(self, source: CycleSource) -> None:
        if self.role == "joint":
            d, n = source.joint_table[self._act(source)]
            self._planned = (int(d), int(n))

    def keep_drafting(self, source: CycleSource) -> bool:
        if self.role == "joint":
            return source.depth < self._planned[0]
        if self.role == "draft":
            return self._act(source) == 0
        return False

    def verify_size(self, source: CycleSource) -> int:
        if self.role == "verify":
            return min(self._act(source), source.n_nodes)
        if self.role == "joint":
            return min(self._planned[1], source.n_nodes)
        return source.n_nodes


def load_sb3(path: str | Path) -> tuple[Any, bool]:
    """``MaskablePPO.load`` when the file holds a maskable policy, else ``PPO.load``; (model, maskable)."""
    from sb3_contrib import MaskablePPO
    from stable_baselines3 import PPO

    try:
        return MaskablePPO.load(path, device="cpu"), True
    except Exception:  # a plain PPO file: fall through to PPO.load
        pass
    try:
        return PPO.load(path, device="cpu"), False
    except Exception as exc:
        raise SpecGymError(
            f"cannot load {str(path)!r} as a PPO or MaskablePPO policy ({type(exc).__name__}: {exc})"
        ) from None


class Composite(Policy):
    """A depth policy and a size policy acting together (the co-adaptive pair of LTD)."""

    def __init__(self, depth: Policy, size: Policy, name: str = "composite"):
        self.depth, self.size, self.name = depth, size, name

    def reset(self) -> None:
        self.depth.reset()
        self.size.reset()

    def plan(self, source: CycleSource) -> None:
        self.depth.plan(source)
        self.size.plan(source)

    def keep_drafting(self, source: CycleSource) -> bool:
        return self.depth.keep_drafting(source)

    def verify_size(self, source: CycleSource) -> int:
        return self.size.verify_size(source)

    def observe(self, result: CycleResult) -> None:
        self.depth.observe(result)
        self.size.observe(result)
