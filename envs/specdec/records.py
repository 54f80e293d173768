"""What one draft-and-verify cycle and one generation leave behind.

Environments, baselines, cost models and benchmarks read these records; nothing re-derives them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def mean_accepted_length(tokens: int, cycles: int) -> float:
    """Tokens appended per target forward (accepted draft tokens + the target's own token, averaged
    over cycles): the one definition every record, env, baseline and benchmark reports.

    It counts the tokens that reach the output, so a last cycle cut short by EOS or the token limit
    counts what it appended, not what was accepted past the end (that would overstate the speed).
    1.0 with no cycle: target-only decoding appends one token per forward.
    """
    return tokens / cycles if cycles else 1.0


@dataclass
class CycleRecord:
    """One draft-and-verify cycle.

    Draft nodes are listed in creation order (level by level); a chain is a tree of width 1.
    ``parents[i] == -1`` means node ``i`` hangs off the context.
    """

    context_len: int  # tokens before the cycle (prompt + generated)
    width: int  # tree width W (1 = chain)
    draft_forwards: int  # draft model calls this cycle (= depth reached)
    draft_tokens_fed: list[int]  # tokens each draft forward processed
    draft_step_times: list[float]  # seconds of each draft forward (with its top-W expansion)
    verify_tokens_fed: int  # tokens in the target forward: pending context token(s) + verified nodes
    draft_tokens: list[int]
    parents: list[int]
    depths: list[int]  # 1-based depth of each node
    draft_probs: list[float]  # draft P(token | parent), temperature 1
    draft_entropies: list[float]  # entropy (nats) of the draft distribution the node came from
    cum_logprobs: list[float]  # draft log-prob of the path to the node
    verified: list[int]  # node indices sent to the target, in creation order
    target_probs: list[float]  # target P(token | parent) for each verified node, temperature 1
    accepted: list[int]  # accepted node indices, root to leaf
    bonus_token: int  # the target's token after the accepted path (correction or bonus)
    new_tokens: list[int]  # tokens this cycle appended (after EOS / length truncation)
    draft_time: float  # seconds, device-synchronised
    verify_time: float

    @property
    def accepted_len(self) -> int:
        """Accepted draft tokens (without the bonus token)."""
        return len(self.accepted)

    @property
    def time(self) -> float:
        return self.draft_time + self.verify_time


@dataclass
class GenerationResult:
    """A finished generation: new tokens, why it stopped, per-cycle records and timings."""

    prompt_len: int
    tokens: list[int]
    stop_reason: str  # "eos" | "length"
    prefill_time: float
    decode_time: float
    records: list[CycleRecord] = field(default_factory=list)

    @property
    def total_time(self) -> float:
        return self.prefill_time + self.decode_time

    @property
    def tokens_per_s(self) -> float:
        return len(self.tokens) / self.total_time if self.total_time > 0 else float("inf")

    @property
    def mean_accepted_length(self) -> float:
        """See :func:`mean_accepted_length`."""
        return mean_accepted_length(sum(len(r.new_tokens) for r in self.records), len(self.records))
