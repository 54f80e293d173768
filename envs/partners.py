"""DraftVerify's partners by name: the engine's schedules, the oracle, saved SB3 policies, and
depth+size pairs; what ``make_policy``, DraftVerify's ``partner`` and evaluation accept:

- ``static-K``, ``heuristic``, ``confidence[-T]``, ``specdec++[-T]``, ``expected-depth``, ``expected``:
  the engine's schedules (:mod:`envs.specdec.schedules`); T is a probability in (0, 1].
- ``DEPTH+SIZE``: any depth policy with a size policy (``expected``, ``oracle`` or a saved
  size policy's ``.zip``), e.g. ``confidence-0.6+expected``.
- ``oracle``, ``oracle-depth``: the best schedule for a recorded trace (:mod:`envs.specdec.oracle`);
  needs a replay source.
- ``PATH.zip``: a saved SB3 ``PPO`` / ``MaskablePPO`` policy of the role asked for (:class:`SB3Policy`).
- ``NAME``: a published policy (:mod:`envs.published`): its policy of the role asked for, both for
  ``role="joint"``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium import spaces

from envs.published import is_published, role_file
from envs.specdec.arbitrate import N_FEATURES
from envs.specdec.cycles import (
    COST_FEATURES,
    DEPTH_ACTIONS,
    ROLES,
    SIZE_ACTIONS,
    CycleSource,
    n_actions,
    obs_layout,
)
from envs.specdec.decoder import MAX_DEPTH, MAX_WIDTH
from envs.specdec.errors import SpecGymError
from envs.specdec.oracle import Oracle
from envs.specdec.replay import TraceReplay
from envs.specdec.schedules import (
    Composite,
    Confidence,
    ExpectedDepth,
    ExpectedSize,
    Heuristic,
    Policy,
    SpecDecPP,
    StaticDepth,
    scaled_depth,
    scaled_size,
)

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm

BASELINES = (
    "static-K",
    "heuristic",
    "confidence[-T]",
    "specdec++[-T]",
    "expected-depth",
    "expected",
    "DEPTH+SIZE",
    "oracle",
    "oracle-depth",
    "PATH.zip",
    "NAME (published: envs/policies)",
)


ROLE_POLICIES = {
    "draft": "a depth policy (role 'draft', Discrete(2) actions, or Discrete(38) scales)",
    "verify": "a size policy (role 'verify', Discrete(max_depth*width+1) actions, or Discrete(38) scales)",
    "joint": "a joint policy (role 'joint', one action per (depth, size) pair)",
}


def saved_settings(observation_space: Any, action_space: Any) -> list[tuple[str, int, int, str, str, str]]:
    """Every DraftVerify (role, max_depth, width, cost_features, size_action, depth_action) whose
    observation and action spaces these are."""
    if not (isinstance(action_space, spaces.Discrete) and isinstance(observation_space, spaces.Box)):
        return []
    if len(observation_space.shape) != 1 or float(np.min(observation_space.low)) >= 0:  # DraftVerify's go to -1
        return []
    size, n = observation_space.shape[0], int(action_space.n)
    return [
        (role, d, w, features, size_action, depth_action)
        for d in range(1, MAX_DEPTH + 1)
        for w in range(1, MAX_WIDTH + 1)
        for features in COST_FEATURES
        if obs_layout(d, w, features)["all"].stop == size
        for role in ROLES
        for size_action in SIZE_ACTIONS
        for depth_action in DEPTH_ACTIONS
        if (role == "verify" or size_action == "nodes")
        and (role == "draft" or depth_action == "stop")
        and n_actions(role, d, w, size_action, depth_action) == n
    ]


class SB3Policy(Policy):
    """A saved Stable-Baselines3 policy (``PPO`` or sb3-contrib ``MaskablePPO`` .zip) in one role.

    It reads the same observation and action mask DraftVerify gives it in that role, so a depth
    policy trained with ``role="draft"`` can be the partner of a size policy and vice versa. A
    policy saved from another role (told by its action space) or another env is refused, saying
    what the file holds; with ``source``, so is one trained with another max_depth or width.
    """

    def __init__(self, path: str | Path | BaseAlgorithm, role: str, source: CycleSource | None = None):
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
        self._fits = saved_settings(self.model.observation_space, self.model.action_space)
        self._check_role()
        # a policy's action space says how its action reads (SIZE_SCALES has a size no tree shape's has)
        self.size_action, self.depth_action = next(f[4:] for f in self._fits if f[0] == role)
        self._fitted: tuple[int, int, str] | None = None  # the (max_depth, width, cost_features) last checked
        if source is not None:
            self.check(source)

    def _check_role(self) -> None:
        obs_space, act_space = self.model.observation_space, self.model.action_space
        if not self._fits:
            if getattr(obs_space, "shape", None) == (N_FEATURES,) and float(np.min(obs_space.low)) >= 0:
                raise SpecGymError(
                    f"{self.name} is not a DraftVerify policy: its observations are SpecGym/Arbitration's "
                    f"{N_FEATURES} features; pass a policy saved from SpecGym/DraftVerify (use this one as an arbiter)"
                )
            raise SpecGymError(
                f"{self.name} is not a DraftVerify policy: its spaces ({obs_space}, {act_space}) fit no role, "
                "max_depth and width; pass a policy saved from SpecGym/DraftVerify"
            )
        roles = [r for r in ROLES if any(fit[0] == r for fit in self._fits)]
        if self.role not in roles:
            held = " or ".join(ROLE_POLICIES[r] for r in roles)
            raise SpecGymError(
                f"{self.name} holds {held}, but {ROLE_POLICIES[self.role]} is expected here: pass a policy "
                f"saved from role={self.role!r}"
            )

    def cost_features(self, max_depth: int, width: int) -> str:
        """The observation layout (``cost_features``) it reads at this tree shape, as its spaces tell
        (one size can fit another shape's other layout); ``ratios`` when none fits (``check`` says why)."""
        held = {f for r, d, w, f, *_ in self._fits if (r, d, w) == (self.role, max_depth, width)}
        return next((f for f in COST_FEATURES if f in held), "ratios")

    def check(self, source: CycleSource) -> None:
        """Refuse a policy trained with another max_depth, width or cost_features than ``source``'s."""
        key = (source.max_depth, source.width, source.cost_features)
        if key == self._fitted:
            return
        if (self.role, *key) not in {fit[:4] for fit in self._fits}:
            shape = (obs_layout(*key)["all"].stop,)
            trained = sorted({(d, w, f) for r, d, w, f, *_ in self._fits if r == self.role})
            hint = (
                f" (max_depth={trained[0][0]}, width={trained[0][1]}, cost_features={trained[0][2]!r})"
                if len(trained) == 1
                else ""
            )
            raise SpecGymError(
                f"saved policy {self.name} expects observations of shape {self.model.observation_space.shape}, "
                f"the env gives {shape}: use the max_depth, width and cost_features it was trained with{hint}"
            )
        self._fitted = key

    def _act(self, source: CycleSource) -> int:
        """The deterministic action: the most probable valid one. Straight from the policy network's
        logits, which is what ``predict(deterministic=True)`` returns at a fifth of its cost (a
        partner acts at every draft step of its env, so this is most of a training step's time)."""
        import torch
        from stable_baselines3.common.preprocessing import preprocess_obs

        self.check(source)
        p = self.model.policy
        obs = torch.as_tensor(source.observation(), dtype=torch.float32)[None]
        with torch.no_grad():
            features = p.pi_features_extractor(preprocess_obs(obs, p.observation_space, p.normalize_images))
            logits = p.action_net(p.mlp_extractor.forward_actor(features))[0].numpy()
        if self.maskable:
            logits = np.where(source.action_mask(self.role, self.size_action, self.depth_action), logits, -np.inf)
        return int(np.argmax(logits))

    def plan(self, source: CycleSource) -> None:
        if self.role == "joint":
            d, n = source.joint_table[self._act(source)]
            self._planned = (int(d), int(n))

    def keep_drafting(self, source: CycleSource) -> bool:
        if self.role == "joint":
            return source.depth < self._planned[0]
        if self.role == "draft" and self.depth_action == "expected":
            return scaled_depth(source, self._act(source))
        if self.role == "draft":
            return self._act(source) == 0
        return False

    def verify_size(self, source: CycleSource) -> int:
        if self.role == "verify" and self.size_action == "expected":
            return scaled_size(source, self._act(source))
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


def published_pair(name: str, source: CycleSource | None = None, label: str | None = None) -> Composite:
    """A published policy's depth and size policies together (an unknown name is refused, listing the
    published ones); ``label`` names the pair in results (default: ``name``)."""
    return Composite(*(SB3Policy(role_file(name, r), r, source) for r in ("draft", "verify")), label or name)


def make_policy(
    spec: str, *, source: CycleSource | None = None, role: str = "joint", max_depth: int | None = None
) -> Policy:
    """A policy by name (see the module docstring); ``role`` only matters for saved SB3 policies
    (checked against ``source``'s max_depth and width when given); with ``max_depth``,
    ``static-K`` deeper than it is refused (drafting stops there, so it would be static-max_depth)."""
    spec = str(spec)
    if m := re.fullmatch(r"(.+?)\+(expected|oracle|[^+]+\.zip)", spec):  # lazy: specdec++ has pluses of its own
        depth = make_policy(m.group(1), source=source, role="draft", max_depth=max_depth)
        return Composite(depth, make_policy(m.group(2), source=source, role="verify"), spec)
    if spec == "expected":
        return ExpectedSize()
    if spec == "expected-depth":
        return ExpectedDepth()
    if spec.endswith(".zip"):
        return SB3Policy(spec, role, source)
    if is_published(spec):
        return published_pair(spec, source) if role == "joint" else SB3Policy(role_file(spec, role), role, source)
    if m := re.fullmatch(r"static-(\d+)", spec):
        k = int(m.group(1))
        if max_depth is not None and k > max_depth:
            raise SpecGymError(
                f"{spec!r} drafts {k} tokens but max_depth is {max_depth}: pass static-K with K in 1..{max_depth} "
                "or raise max_depth"
            )
        return StaticDepth(k)
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
