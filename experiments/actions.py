"""What a policy decides, counted: action histograms, and how often one departs from a rule.

A collapsed policy (LTD's reproduction found a size policy that emitted one value per model)
shows as a histogram with a single bar. :class:`Watched` wraps a policy, counts each cycle's
draft depth (the depth role's decisions: ``depth - 1`` continues, then a stop or the cap) and
verification size (the size role's action), and asks shadow rules the same question at the same
state: the share of decisions where the answers differ is the policy's departure from each rule.
"""

from __future__ import annotations

from collections import Counter

from envs.specdec.cycles import CycleResult, CycleSource
from envs.specdec.schedules import Policy

ROLE_ACTIONS = {"draft": "depth", "verify": "verify_size"}  # each role's histogram: per cycle


class Watched(Policy):
    """``policy`` making every decision, counted; ``shadows`` asked the same questions, never obeyed."""

    def __init__(self, policy: Policy, shadows: dict[str, Policy] | None = None):
        self.policy, self.name = policy, policy.name
        self.shadows = shadows or {}
        self.counts = {action: Counter() for action in ROLE_ACTIONS.values()}
        self.decisions = {role: 0 for role in ROLE_ACTIONS}
        self.departures = {name: {role: 0 for role in ROLE_ACTIONS} for name in self.shadows}

    def reset(self) -> None:
        for p in (self.policy, *self.shadows.values()):
            p.reset()

    def plan(self, source: CycleSource) -> None:
        for p in (self.policy, *self.shadows.values()):
            p.plan(source)

    def keep_drafting(self, source: CycleSource) -> bool:
        go = bool(self.policy.keep_drafting(source))
        self._compare("draft", go, lambda p: bool(p.keep_drafting(source)))
        return go

    def verify_size(self, source: CycleSource) -> int:
        def size(p: Policy) -> int:  # as the source applies it
            return min(max(int(p.verify_size(source)), 0), source.n_nodes)

        n = size(self.policy)
        self._compare("verify", n, size)
        return n

    def _compare(self, role: str, chosen: object, ask) -> None:
        self.decisions[role] += 1
        for name, shadow in self.shadows.items():
            self.departures[name][role] += ask(shadow) != chosen

    def observe(self, result: CycleResult) -> None:
        self.counts["depth"][result.depth] += 1
        self.counts["verify_size"][result.n_verify] += 1
        for p in (self.policy, *self.shadows.values()):
            p.observe(result)

    def histograms(self) -> dict[str, dict[str, int]]:
        """Cycles by draft depth and by verification size (actions never taken are left out)."""
        return {action: {str(k): c[k] for k in sorted(c)} for action, c in self.counts.items()}

    def departure(self, name: str) -> dict[str, float | int | None]:
        """Share of the depth role's, the size role's and all decisions where the policy's answer
        differs from shadow ``name``'s at the same state (None where there were no decisions)."""
        d, n = self.departures[name], self.decisions

        def share(k: int, m: int) -> float | None:
            return k / m if m else None

        return {
            "draft": share(d["draft"], n["draft"]),
            "verify": share(d["verify"], n["verify"]),
            "all": share(d["draft"] + d["verify"], n["draft"] + n["verify"]),
            "decisions": n["draft"] + n["verify"],
        }
