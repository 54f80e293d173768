"""DraftVerify's partners by name: the engine's schedules, the oracle, saved SB3 policies, and
depth+size pairs; what ``make_policy``, DraftVerify's ``partner`` and evaluation accept:

- ``static-K``, ``heuristic``, ``confidence[-T]``, ``specdec++[-T]``, ``expected``: the engine's
  schedules (:mod:`envs.specdec.schedules`).
- ``DEPTH+SIZE``: any depth policy with a size policy (``expected``, ``oracle`` or a saved
  size policy's ``.zip``), e.g. ``confidence-0.6+expected``.
- ``oracle``, ``oracle-depth``: the best schedule for a recorded trace (:mod:`envs.specdec.oracle`);
  needs a replay source.
- ``PATH.zip``: a saved SB3 ``PPO`` / ``MaskablePPO`` policy (:class:`SB3Policy`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from envs.specdec.cycles import ROLES, CycleSource
from envs.specdec.errors import SpecGymError
from envs.specdec.oracle import Oracle
from envs.specdec.replay import TraceReplay
from envs.specdec.schedules import Composite, Confidence, ExpectedSize, Heuristic, Policy, SpecDecPP, StaticDepth

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm

BASELINES = (
    "static-K",
    "heuristic",
    "confidence[-T]",
    "specdec++[-T]",
    "expected",
    "DEPTH+SIZE",
    "oracle",
    "oracle-depth",
    "PATH.zip",
)


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


def make_policy(spec: str, *, source: CycleSource | None = None, role: str = "joint") -> Policy:
    """A policy by name (see the module docstring); ``role`` only matters for saved SB3 policies."""
    spec = str(spec)
    if m := re.fullmatch(r"(.+?)\+(expected|oracle|[^+]+\.zip)", spec):  # lazy: specdec++ has pluses of its own
        depth = make_policy(m.group(1), source=source, role="draft")
        return Composite(depth, make_policy(m.group(2), source=source, role="verify"), spec)
    if spec == "expected":
        return ExpectedSize()
    if spec.endswith(".zip"):
        return SB3Policy(spec, role)
    if m := re.fullmatch(r"static-(\d+)", spec):
        return StaticDepth(int(m.group(1)))
    if spec == "heuristic":
        return Heuristic()
    if m := re.fullmatch(r"(confidence|specdec\+\+)(?:-([0-9]*\.?[0-9]+))?", spec):
        cls = Confidence if m.group(1) == "confidence" else SpecDecPP
        return cls(float(m.group(2))) if m.group(2) else cls()
    if spec in ("oracle", "oracle-depth"):
        if not isinstance(source, TraceReplay):
            raise SpecGymError("the oracle needs a recorded trace: use backend='replay' with traces=FILE.npz")
        return Oracle(source, verify_all=spec == "oracle-depth")
    raise SpecGymError(f"unknown policy {spec!r}; choose one of {', '.join(BASELINES)}")
