"""Non-learned DraftVerify policies behind the :class:`~agents.policy.Policy` interface.

Names (what ``make_policy``, DraftVerify's ``partner`` and evaluation accept):

- ``static-K``: draft K tokens (tree levels) every cycle.
- ``heuristic``: transformers' assisted-generation schedule: start at 5, +2 after a cycle
  that accepted everything drafted, -1 (minimum 1) otherwise. Like transformers, the
  schedule itself is not capped; drafting is (at ``max_depth``).
- ``confidence`` / ``confidence-T``: stop once the draft's prob of the newest token (of the
  newest level's best node, for a tree) is below T (0.4, transformers' dynamic default).
- ``specdec++`` / ``specdec++-T``: stop once the estimated probability that the best draft
  path is rejected somewhere exceeds T (default 0.5). SpecDec++ trains an acceptance head
  for this; we use the draft's own probabilities as the per-token acceptance estimate, so
  P(reject) = 1 - prod_j p_draft(x_j) = 1 - exp(cumulative log-prob of the best newest node).
- ``expected``: a size rule (EAGLE-2 / Sequoia style): verify the top-n nodes that maximise
  the cycle's throughput as the draft itself expects it, (1 + the sum of their path
  probabilities) / the cycle's predicted seconds; exp(cumulative log-prob) is the draft's
  P(that node's path is the target's), so the sum is its expected count of accepted nodes.
  n = 0 (a plain target step) when nothing is worth its verification. Alone it drafts one level.
- ``DEPTH+SIZE``: any depth policy above with a size policy (``expected``, ``oracle`` or a saved
  size policy's ``.zip``), e.g. ``confidence-0.6+expected``.
- ``oracle``: the best schedule for a recorded trace (dynamic programming under the same cost
  model over every (depth, size) any of the env's roles may choose); needs a replay source.
- ``oracle-depth``: the oracle restricted to verifying every node it drafted: hindsight on the
  depth only, so its gap to ``oracle`` is what choosing the verified nodes in hindsight is worth.
- ``PATH.zip``: a saved SB3 ``PPO`` / ``MaskablePPO`` policy (:class:`~agents.policy.SB3Policy`).

Every baseline verifies all drafted nodes unless it says otherwise (the oracle chooses).
"""

from __future__ import annotations

import math
import re

import numpy as np

from agents.policy import Composite, Policy, SB3Policy, tokens_per_s
from envs.specdec.cycles import CycleResult, CycleSource, joint_actions
from envs.specdec.errors import SpecGymError
from envs.specdec.replay import PromptTables, TraceReplay

BASELINES = ("static-K", "heuristic", "confidence[-T]", "specdec++[-T]", "expected", "DEPTH+SIZE", "oracle",
             "oracle-depth", "PATH.zip")  # fmt: skip


class StaticDepth(Policy):
    def __init__(self, k: int):
        if k < 1:
            raise SpecGymError(f"static draft length must be >= 1, got {k}")
        self.k, self.name = k, f"static-{k}"

    def keep_drafting(self, source: CycleSource) -> bool:
        return source.depth < self.k


class Heuristic(Policy):
    """transformers' ``num_assistant_tokens_schedule="heuristic"``."""

    name = "heuristic"
    START = 5

    def __init__(self):
        self.k = self.START

    def reset(self) -> None:
        self.k = self.START

    def keep_drafting(self, source: CycleSource) -> bool:
        return source.depth < self.k

    def observe(self, result: CycleResult) -> None:
        self.k = self.k + 2 if result.accepted_len == result.depth else max(1, self.k - 1)


class Confidence(Policy):
    def __init__(self, threshold: float = 0.4):
        self.threshold, self.name = threshold, f"confidence-{threshold:g}"

    def keep_drafting(self, source: CycleSource) -> bool:
        return source.newest_prob >= self.threshold


class SpecDecPP(Policy):
    def __init__(self, threshold: float = 0.5):
        self.threshold, self.name = threshold, f"specdec++-{threshold:g}"

    def keep_drafting(self, source: CycleSource) -> bool:
        return 1.0 - math.exp(source.best_logprob) <= self.threshold


class ExpectedSize(Policy):
    """See ``expected`` in the module docstring."""

    name = "expected"

    def verify_size(self, source: CycleSource) -> int:
        ranked = np.sort(source.node_logprobs())[::-1]
        tokens = 1.0 + np.concatenate([[0.0], np.cumsum(np.exp(ranked))])
        return int(np.argmax(tokens / source.cycle_times()))


class Oracle(Policy):
    """Minimum total time to produce the trace's known output, by dynamic programming.

    State: (position i, pending tokens p in {1, 2}); action: (depth d, verify size n) with
    d <= the env's cap at i and 0 <= n <= d * W (n = 0, sending no node, is the verify role's;
    the joint role's sizes start at 1, so the oracle bounds every role). T[i, p] = min
    cost(i, p, d, n) + T[i + new(i, d, n), p'], with new = accepted + 1 (fewer at the end) and
    p' = 2 when the whole depth was accepted. As the depth partner it follows the plan for the
    cycle's start state; as the size partner it picks the best size for whatever depth was
    drafted. ``verify_all`` restricts every cycle to n = d * W (hindsight on the depth only).
    """

    def __init__(self, replay: TraceReplay, verify_all: bool = False):
        self.replay, self.verify_all = replay, verify_all
        self.name = "oracle-depth" if verify_all else "oracle"
        actions = joint_actions(replay.max_depth, replay.width)
        if verify_all:
            self.actions = actions[actions[:, 1] == actions[:, 0] * replay.width]
        else:
            none = np.stack([np.arange(1, replay.max_depth + 1), np.zeros(replay.max_depth, np.int64)], axis=1)
            self.actions = np.concatenate([none, actions])
        self._solved: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._depth = 1

    def solve(self, prompt_index: int) -> tuple[np.ndarray, np.ndarray]:
        """(T [n + 1, 2] seconds to finish, best [n, 2] action index) for pending = 1, 2."""
        if prompt_index not in self._solved:
            self._solved[prompt_index] = self._dp(self.replay.tables(prompt_index))
        return self._solved[prompt_index]

    def _dp(self, t: PromptTables) -> tuple[np.ndarray, np.ndarray]:
        d, n = self.actions[:, 0], self.actions[:, 1]
        total = np.zeros((t.n + 1, 2))
        best = np.zeros((t.n, 2), np.int64)
        for i in range(t.n - 1, -1, -1):
            rest = (d - 1) * t.draft_level[i] + t.verify[i, n] + self._after(t, total, i, d, n)
            rest = np.where(d <= t.cap[i], rest, np.inf)
            for p in (0, 1):
                cost = t.draft_first[i, p] + rest
                best[i, p] = int(np.argmin(cost))
                total[i, p] = cost[best[i, p]]
        return total, best

    @staticmethod
    def _after(t: PromptTables, total: np.ndarray, i: int, d, n) -> np.ndarray:
        """Seconds to finish from the state a cycle at ``i`` with depth ``d`` and size ``n`` leads to."""
        acc = t.acc[i, d - 1, n].astype(np.int64)
        return total[i + np.minimum(acc + 1, t.n - i), (acc == d).astype(np.int64)]

    def _check(self, source: CycleSource) -> PromptTables:
        if source is not self.replay:
            raise SpecGymError("the oracle plans on its own trace replay; run it on that source")
        return source.t

    def plan(self, source: CycleSource) -> None:
        self._check(source)
        _, best = self.solve(source.prompt_index)
        self._depth = int(self.actions[best[source.position, source.pending - 1], 0])

    def keep_drafting(self, source: CycleSource) -> bool:
        return source.depth < self._depth

    def verify_size(self, source: CycleSource) -> int:
        t = self._check(source)
        total, _ = self.solve(source.prompt_index)
        i, d = source.position, source.depth
        n = self.actions[self.actions[:, 0] == d, 1]  # the sizes it may send at this depth
        return int(n[np.argmin(t.verify[i, n] + self._after(t, total, i, d, n))])


def best_static_rate(source: CycleSource, n_prompts: int | None = None) -> float:
    """The best static k's tokens/s over the first ``n_prompts`` of ``source`` (all by default):
    the throughput to beat, and DraftVerify's ``rate="best_static"``."""
    return max(tokens_per_s(StaticDepth(k), source, n_prompts) for k in range(1, source.max_depth + 1))


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
