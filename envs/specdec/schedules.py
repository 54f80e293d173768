"""DraftVerify's decision-makers over a :class:`~envs.specdec.cycles.CycleSource` (live engine or
trace replay): the :class:`Policy` interface, rollouts, and the hand-written schedules.

A :class:`Policy` is asked at three points of each cycle:

- ``plan(source)``: at cycle start, before drafting (schedules and the joint role decide here);
- ``keep_drafting(source)``: after each draft forward (depth); the caller forces a stop at
  ``source.cap``;
- ``verify_size(source)``: after drafting, how many of the ``source.n_nodes`` drafted nodes
  to verify (top ones by cumulative draft log-prob);

and told the outcome with ``observe(result)``. :func:`rollout` plays one generation with it;
DraftVerify uses the same calls for its partner. The schedules are the engine's own rules (as
transformers ships ``heuristic`` and ``confidence`` inside its assisted generation):

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
- ``expected-depth``: the depth rule built on the same estimate: after each draft forward, keep
  drafting while one more level is expected to raise that throughput: the best (1 + expected
  accepted nodes) / predicted cycle seconds over sizes, now against after one more forward, the
  new level's nodes estimated as the frontier's path probabilities times the newest token's
  probability. It reads the cost model, so a cheaper draft or a flatter verification drafts deeper
  with no threshold to tune per device. ``expected-depth+expected`` pairs the two.

Every schedule verifies all drafted nodes unless it says otherwise. The oracle is in
``oracle.py``; names, saved SB3 policies and depth+size pairs are resolved by ``envs.partners``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from envs.specdec.cycles import SIZE_SCALES, CycleResult, CycleSource
from envs.specdec.errors import SpecGymError
from envs.specdec.records import mean_accepted_length


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
        """See :func:`~envs.specdec.records.mean_accepted_length`."""
        return mean_accepted_length(self.tokens, self.cycles)


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


def _probability(rule: str, threshold: float, meaning: str) -> float:
    """``threshold`` if it is a probability in (0, 1], else a SpecGymError naming the range."""
    if not (isinstance(threshold, int | float) and not isinstance(threshold, bool) and 0 < threshold <= 1):
        raise SpecGymError(
            f"{rule} threshold must be a probability in (0, 1] ({meaning}), got {threshold!r}: pass e.g. {rule}-0.5"
        )
    return float(threshold)


class Confidence(Policy):
    def __init__(self, threshold: float = 0.4):
        threshold = _probability(
            "confidence", threshold, "drafting stops once the newest token's draft prob is below it"
        )
        self.threshold, self.name = threshold, f"confidence-{threshold:g}"

    def keep_drafting(self, source: CycleSource) -> bool:
        return source.newest_prob >= self.threshold


class SpecDecPP(Policy):
    def __init__(self, threshold: float = 0.5):
        threshold = _probability("specdec++", threshold, "drafting stops once P(the draft is rejected) exceeds it")
        self.threshold, self.name = threshold, f"specdec++-{threshold:g}"

    def keep_drafting(self, source: CycleSource) -> bool:
        return 1.0 - math.exp(source.best_logprob) <= self.threshold


def expected_tokens(probs: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """1 + the expected accepted nodes when verifying the top n of the nodes whose path probabilities
    are ``probs`` (each scaled by ``scale``), for n = 0..len: the ``expected`` rules' numerator."""
    return 1.0 + scale * np.concatenate([[0.0], np.cumsum(np.sort(probs)[::-1])])


class ExpectedSize(Policy):
    """See ``expected`` in the module docstring; ``scale`` multiplies the draft's acceptance
    estimates (below 1 trusts the draft less and verifies fewer nodes, above 1 more: DraftVerify's
    ``size_action="expected"`` chooses it per cycle)."""

    def __init__(self, scale: float = 1.0):
        self.scale = float(scale)
        self.name = "expected" if self.scale == 1.0 else f"expected-x{self.scale:g}"

    def verify_size(self, source: CycleSource) -> int:
        tokens = expected_tokens(np.exp(source.node_logprobs()), self.scale)
        return int(np.argmax(tokens / source.cycle_times()))


class ExpectedDepth(Policy):
    """See ``expected-depth`` in the module docstring; ``scale`` multiplies the draft's acceptance
    estimates (below 1 trusts the draft less and stops sooner, 0 stops at once, above 1 drafts on:
    DraftVerify's ``depth_action="expected"`` chooses it per draft forward)."""

    def __init__(self, scale: float = 1.0):
        self.scale = float(scale)
        self.name = "expected-depth" if self.scale == 1.0 else f"expected-depth-x{self.scale:g}"

    def keep_drafting(self, source: CycleSource) -> bool:
        probs = np.exp(source.node_logprobs())
        now = np.max(expected_tokens(probs, self.scale) / source.cycle_times())
        deeper = np.concatenate([probs, probs[-source.width :] * source.newest_prob])
        return bool(np.max(expected_tokens(deeper, self.scale) / source.deeper_cycle_times()) > now)


def scaled_size(source: CycleSource, action: int) -> int:
    """The verification size a ``size_action="expected"`` action gives: the ``expected`` rule with
    the draft's acceptance estimates scaled by ``SIZE_SCALES[action]`` (the env and saved policies)."""
    return ExpectedSize(SIZE_SCALES[action]).verify_size(source)


def scaled_depth(source: CycleSource, action: int) -> bool:
    """Whether a ``depth_action="expected"`` action keeps drafting: the ``expected-depth`` rule with
    the draft's acceptance estimates scaled by ``SIZE_SCALES[action]`` (the env and saved policies)."""
    return ExpectedDepth(SIZE_SCALES[action]).keep_drafting(source)


def best_static_rate(source: CycleSource, n_prompts: int | None = None) -> float:
    """The best static k's tokens/s over the first ``n_prompts`` of ``source`` (all by default):
    the throughput to beat, and DraftVerify's ``rate="best_static"``."""
    return max(tokens_per_s(StaticDepth(k), source, n_prompts) for k in range(1, source.max_depth + 1))
