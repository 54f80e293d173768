"""Arbitrated speculative decoding (CoSpec): at each draft/target mismatch, a caller keeps one token.

Greedy chain SpD: the draft proposes ``k`` tokens and the target scores all of them in one
forward. Walking the block, a drafted token equal to the target's argmax is accepted as usual.
At a mismatch the caller decides: keep the target's token (standard, lossless SpD: the cycle
ends with it), or keep the draft's token, after which the walk goes on over the rest of the
block against the target logits already computed (they were computed after the drafted tokens,
so they are exactly the target's view of the new prefix) and can accept more. After the last
drafted token the target's own next token is the bonus, as in SpD.

:class:`ArbitratedCycle` is one such cycle; :class:`ArbitrationSession` decodes a whole
question, stopping at each mismatch. The environment, the baselines' evaluation and the
oracle all drive these two classes.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from envs.specdec.decoder import SpeculativeDecoder
from envs.specdec.errors import SpecGymError
from envs.specdec.records import CycleRecord, mean_accepted_length
from envs.specdec.sampling import entropy, log_probs
from envs.specdec.state import DecodeState, Timer
from envs.specdec.verify import Verdict, target_forward, trim_target

N_FEATURES = 27  # length of SpecGym/Arbitration's observation at a mismatch (envs.arbitration.features)


@dataclass(frozen=True)
class Mismatch:
    """Where the target's greedy token differs from the drafted one, and both models' views."""

    index: int  # position in the drafted block (0-based)
    block: int  # tokens drafted this cycle
    draft_token: int
    target_token: int
    p_draft_of_draft: float  # draft P(draft token)
    p_draft_of_target: float  # draft P(target token)
    p_target_of_draft: float  # target P(draft token)
    p_target_of_target: float  # target P(target token)
    draft_entropy: float  # nats
    target_entropy: float
    draft_margin: float  # top-1 minus top-2 probability
    target_margin: float


def _margin(logp: torch.Tensor) -> float:
    top = logp.topk(2).values.exp().tolist()
    return top[0] - top[1]


class ArbitratedCycle:
    """One greedy chain cycle whose mismatches are settled by :meth:`keep`."""

    def __init__(self, decoder: SpeculativeDecoder, state: DecodeState, k: int):
        if not decoder.sampling.greedy:
            raise SpecGymError("arbitration decodes greedily; use SamplingConfig(temperature=0)")
        self.decoder, self.state = decoder, state
        self.drafter = decoder.begin_cycle(state)
        for _ in range(min(k, state.remaining - 1)):  # a draft token past max_len could never be kept
            self.drafter.step()
        tree = self.drafter.tree
        self.nodes = list(range(len(tree)))
        self.ctx = len(state.tokens)
        with Timer(state.device) as timer:
            self.scored = target_forward(decoder.pair.target, state, tree, self.nodes)
        self.verify_time = timer.elapsed
        self.target_logp = log_probs(self.scored.logits)  # row j: the target after j drafted tokens
        self.argmax = self.target_logp.argmax(dim=-1).tolist()
        self.pos = 0  # drafted tokens accepted so far (matched or kept)
        self.kept: list[int] = []  # block positions where the draft's token was kept at a mismatch
        self.closed = False  # the target's token was kept: the cycle ends at ``pos``

    @property
    def tokens(self) -> list[int]:
        return self.drafter.tree.tokens

    def next_mismatch(self) -> Mismatch | None:
        """Accept matching tokens; the next mismatch, or None when the walk is over."""
        n = len(self.tokens)
        while not self.closed and self.pos < n and self.argmax[self.pos] == self.tokens[self.pos]:
            self.pos += 1
        if self.closed or self.pos >= n:
            return None
        j = self.pos
        d_lp, t_lp = self.drafter.level_logp[j][0], self.target_logp[j]
        d_tok, t_tok = self.tokens[j], self.argmax[j]
        return Mismatch(
            index=j,
            block=n,
            draft_token=d_tok,
            target_token=t_tok,
            p_draft_of_draft=math.exp(float(d_lp[d_tok])),
            p_draft_of_target=math.exp(float(d_lp[t_tok])),
            p_target_of_draft=math.exp(float(t_lp[d_tok])),
            p_target_of_target=math.exp(float(t_lp[t_tok])),
            draft_entropy=float(entropy(d_lp)),
            target_entropy=float(entropy(t_lp)),
            draft_margin=_margin(d_lp),
            target_margin=_margin(t_lp),
        )

    def keep(self, draft: bool) -> None:
        """Settle the pending mismatch: the draft's token (walk on) or the target's (cycle ends)."""
        if self.closed or self.pos >= len(self.tokens) or self.argmax[self.pos] == self.tokens[self.pos]:
            raise SpecGymError("no mismatch is pending; call next_mismatch() first")
        if draft:
            self.kept.append(self.pos)
            self.pos += 1
        else:
            self.closed = True

    def finish(self) -> CycleRecord:
        """Append the accepted tokens plus the target's token after them; trim both caches."""
        accepted = self.nodes[: self.pos]
        trim_target(self.state, self.ctx, self.scored, accepted)
        verdict = Verdict(accepted, self.argmax[self.pos], self.scored.target_probs, self.scored.tokens_fed)
        return self.decoder.commit(self.state, self.drafter, self.nodes, verdict, self.verify_time)


class ArbitrationSession:
    """One prompt decoded to the end with arbitrated SpD; :meth:`advance` stops at each mismatch."""

    def __init__(self, decoder: SpeculativeDecoder, prompt_ids: Sequence[int], max_new_tokens: int, k: int):
        self.decoder, self.k = decoder, k
        self.state = decoder.start(prompt_ids, max_new_tokens)
        self.cycle: ArbitratedCycle | None = None
        self.mismatches = self.draft_kept = self.cycles = self.accepted = 0
        self.pending: Mismatch | None = None

    @property
    def done(self) -> bool:
        return self.state.done and self.cycle is None

    @property
    def new_tokens(self) -> list[int]:
        return self.state.new_tokens

    @property
    def time(self) -> float:
        """Measured seconds of drafting and verification so far (prefill excluded)."""
        return sum(r.time for r in self.state.records)

    def advance(self) -> Mismatch | None:
        """Decode up to the next mismatch (returned) or to the end (None)."""
        while True:
            if self.cycle is None:
                if self.state.done:
                    self.pending = None
                    return None
                self.cycle = ArbitratedCycle(self.decoder, self.state, self.k)
            self.pending = self.cycle.next_mismatch()
            if self.pending is not None:
                self.mismatches += 1
                return self.pending
            record = self.cycle.finish()
            self.cycle = None
            self.cycles += 1
            self.accepted += min(record.accepted_len, len(record.new_tokens))

    def clone(self) -> ArbitrationSession:
        """An independent copy of this decoding (caches, records, the cycle in progress) that
        shares the models: branch recording explores both choices of a mismatch from one prefix."""
        pair = self.decoder.pair
        shared = (self.decoder, pair, pair.draft, pair.target, pair.tokenizer)
        return copy.deepcopy(self, {id(x): x for x in shared if x is not None})

    def decide(self, keep_draft: bool) -> None:
        """Settle the mismatch :meth:`advance` returned."""
        if self.cycle is None or self.pending is None:
            raise SpecGymError("no mismatch is pending; call advance() first")
        self.cycle.keep(bool(keep_draft))
        self.draft_kept += bool(keep_draft)
        self.pending = None

    def run(self, decide) -> None:
        """Decode to the end, asking ``decide(mismatch) -> bool`` (True keeps the draft's token)."""
        while (m := self.advance()) is not None:
            self.decide(decide(m))

    @property
    def mean_accepted_length(self) -> float:
        """See :func:`~envs.specdec.records.mean_accepted_length`."""
        return mean_accepted_length(len(self.new_tokens), self.cycles)
