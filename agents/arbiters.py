"""Arbitration decision-makers behind one interface: rules, random, the oracle, saved SB3 policies.

An :class:`Arbiter` is asked at each draft/target mismatch whether to keep the draft's token,
given the env's observation (layout in ``envs/arbitration.py``) and the mismatch itself.
Names (what ``make_arbiter`` and evaluation accept):

- ``target-only``: always the target's token: lossless SpD, the target's greedy answer.
- ``always-draft``: always the draft's token.
- ``random`` / ``random-P``: the draft's token with probability P (default 0.5), seeded.
- ``target-prob-T``: the draft's token when the target's own probability of it is >= T
  (the target nearly agrees; CoSpec's "plausible under the target" rule).
- ``draft-margin-D``: the draft's token when the draft is more confident in its token than
  the target in its own, by at least D: P_draft(draft token) - P_target(target token) >= D.
- ``oracle``: one-step lookahead on the answer: continue both choices with the target's
  greedy decoding to the end, keep the draft's token when only that branch is scored correct.
  Costs two full target decodings per mismatch, so evaluation runs it on a subset.
- ``PATH.zip``: a saved SB3 ``PPO`` policy trained on Arbitration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from envs.specdec.arbitrate import ArbitrationSession, Mismatch
from envs.specdec.errors import SpecGymError
from envs.specdec.records import mean_accepted_length

ARBITERS = ("target-only", "always-draft", "random[-P]", "target-prob-T", "draft-margin-D", "oracle", "PATH.zip")


class Arbiter:
    """Keeps the target's token unless a subclass says otherwise."""

    name = "arbiter"

    def reset(self, env, session: ArbitrationSession, index: int) -> None:
        """A new item starts (``env`` is the unwrapped ArbitrationEnv decoding it)."""

    def keep_draft(self, obs: np.ndarray, mismatch: Mismatch) -> bool:
        return False


class TargetOnly(Arbiter):
    name = "target-only"


class AlwaysDraft(Arbiter):
    name = "always-draft"

    def keep_draft(self, obs: np.ndarray, mismatch: Mismatch) -> bool:
        return True


class RandomArbiter(Arbiter):
    def __init__(self, p: float = 0.5, seed: int = 0):
        if not 0.0 <= p <= 1.0:
            raise SpecGymError(f"random arbiter probability must be in [0, 1], got {p}")
        self.p, self.rng, self.name = p, np.random.default_rng(seed), "random" if p == 0.5 else f"random-{p:g}"

    def keep_draft(self, obs: np.ndarray, mismatch: Mismatch) -> bool:
        return bool(self.rng.random() < self.p)


class TargetProbRule(Arbiter):
    def __init__(self, tau: float):
        self.tau, self.name = tau, f"target-prob-{tau:g}"

    def keep_draft(self, obs: np.ndarray, mismatch: Mismatch) -> bool:
        return mismatch.p_target_of_draft >= self.tau


class DraftMarginRule(Arbiter):
    def __init__(self, delta: float):
        self.delta, self.name = delta, f"draft-margin-{delta:g}"

    def keep_draft(self, obs: np.ndarray, mismatch: Mismatch) -> bool:
        return mismatch.p_draft_of_draft - mismatch.p_target_of_target >= self.delta


class OracleArbiter(Arbiter):
    """One-step lookahead on correctness (see the module docstring)."""

    name = "oracle"

    def reset(self, env, session: ArbitrationSession, index: int) -> None:
        self.env, self.session, self.index = env, session, index

    def _branch(self, prefix: list[int]) -> float:
        """Correctness of ``prefix`` continued by the target's greedy decoding to the end."""
        from envs.tasks.math import score

        env, state = self.env, self.session.state
        left = state.max_len - len(prefix)
        ended = prefix[-1] in env.decoder.eos or left <= 0
        tail = [] if ended else env.decoder.generate_target(prefix, left).tokens
        text = env.pair.tokenizer.decode(prefix[state.prompt_len :] + tail, skip_special_tokens=True)
        return score(env.items[self.index], text)

    def keep_draft(self, obs: np.ndarray, mismatch: Mismatch) -> bool:
        cycle = self.session.cycle  # the output so far plus the accepted part of this block
        prefix = self.session.state.tokens + cycle.tokens[: cycle.pos]
        draft = self._branch(prefix + [mismatch.draft_token])
        return draft > self._branch(prefix + [mismatch.target_token])


class SB3Arbiter(Arbiter):
    """A saved Stable-Baselines3 ``PPO`` policy acting on the env's observation."""

    def __init__(self, path: str | Path):
        from envs.partners import load_sb3

        path = Path(path)
        if not path.is_file():
            raise SpecGymError(f"saved policy {str(path)!r} not found; pass the .zip a training run saved")
        self.model, _ = load_sb3(path)
        self.name = f"sb3:{path.name}"

    def keep_draft(self, obs: np.ndarray, mismatch: Mismatch) -> bool:
        if obs.shape != self.model.observation_space.shape:
            raise SpecGymError(
                f"saved policy expects observations of shape {self.model.observation_space.shape}, "
                f"Arbitration gives {obs.shape}: was it trained on another env?"
            )
        action, _ = self.model.predict(obs, deterministic=True)
        return int(np.asarray(action).item()) == 1


_PATTERNS = (
    (re.compile(r"random(?:-([\d.]+))?"), lambda m, seed: RandomArbiter(float(m.group(1) or 0.5), seed)),
    (re.compile(r"target-prob-([\d.]+)"), lambda m, seed: TargetProbRule(float(m.group(1)))),
    (re.compile(r"draft-margin-(-?[\d.]+)"), lambda m, seed: DraftMarginRule(float(m.group(1)))),
)


def make_arbiter(name: str, seed: int = 0) -> Arbiter:
    """An arbiter by name (see the module docstring) or a saved ``.zip`` policy."""
    if name.endswith(".zip"):
        return SB3Arbiter(name)
    simple = {"target-only": TargetOnly, "always-draft": AlwaysDraft, "oracle": OracleArbiter}
    if name in simple:
        return simple[name]()
    for pattern, build in _PATTERNS:
        if m := pattern.fullmatch(name):
            return build(m, seed)
    raise SpecGymError(f"unknown arbiter {name!r}; choose one of {', '.join(ARBITERS)}")


@dataclass
class ItemResult:
    """One item decoded under an arbiter (times measured, drafting + verification)."""

    index: int
    score: float  # the task scorer's value (the env's reward; partial credit possible)
    correct: bool  # full marks
    tokens: int
    cycles: int
    mismatches: int
    draft_kept: int
    time: float

    @property
    def mean_accepted_length(self) -> float:
        return mean_accepted_length(self.tokens, self.cycles)


def run_item(env, arbiter: Arbiter, index: int) -> ItemResult:
    """Decode item ``index`` of an (unwrapped) ArbitrationEnv with ``arbiter`` at every mismatch."""
    session = env.new_session(index)
    arbiter.reset(env, session, index)
    while (m := session.advance()) is not None:
        session.decide(arbiter.keep_draft(env.observe(session, m), m))
    value = env.correctness(index, session)
    return ItemResult(
        index=index,
        score=value,
        correct=value >= 1.0,
        tokens=len(session.new_tokens),
        cycles=session.cycles,
        mismatches=session.mismatches,
        draft_kept=session.draft_kept,
        time=session.time,
    )
