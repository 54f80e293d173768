"""Arbitrated SpD: keeping the target's token is lossless; a kept draft token lets the rest of
its block be accepted against the target logits already computed; nothing else is accepted."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from envs.pairs.tiny import tiny_random_pair
from envs.specdec import SpecGymError, SpeculativeDecoder
from envs.specdec.arbitrate import ArbitratedCycle, ArbitrationSession

PROMPTS = ["The cat sat on the mat.", "2 + 2 =", "Once upon a time"]


@pytest.fixture(scope="module", params=[0, 1])
def pair(request):
    return tiny_random_pair(seed=request.param, dtype=torch.float64, eos=False)


def greedy_target(pair, tokens: list[int]) -> list[int]:
    """The target's argmax after every prefix of ``tokens`` (one full forward, no cache)."""
    with torch.no_grad():
        logits = pair.target(input_ids=torch.tensor([tokens])).logits[0]
    return logits.argmax(-1).tolist()


def greedy_draft(pair, tokens: list[int]) -> list[int]:
    with torch.no_grad():
        logits = pair.draft(input_ids=torch.tensor([tokens])).logits[0]
    return logits.argmax(-1).tolist()


@pytest.mark.parametrize("k", [1, 3, 6])
def test_keeping_the_target_token_is_target_greedy(pair, k):
    dec = SpeculativeDecoder(pair)
    for text in PROMPTS:
        ids = pair.encode(text)
        session = ArbitrationSession(dec, ids, 40, k)
        session.run(lambda m: False)
        assert session.new_tokens == dec.generate_target(ids, 40).tokens
        assert session.mismatches > 0 and session.draft_kept == 0


class Recorder:
    """Keeps the draft's token at random mismatches and remembers where (sequence positions)."""

    def __init__(self, session: ArbitrationSession, p: float, seed: int):
        self.session, self.p, self.rng = session, p, np.random.default_rng(seed)
        self.kept_positions: list[int] = []

    def __call__(self, m) -> bool:
        keep = bool(self.rng.random() < self.p)
        if keep:
            self.kept_positions.append(len(self.session.state.tokens) + m.index)
        return keep


@pytest.mark.parametrize("p", [0.5, 1.0])
@pytest.mark.parametrize("k", [2, 4, 6])
def test_every_token_is_the_targets_or_a_kept_draft_token(pair, k, p):
    dec = SpeculativeDecoder(pair)
    continued = 0
    for seed, text in enumerate(PROMPTS):
        ids = pair.encode(text)
        session = ArbitrationSession(dec, ids, 40, k)
        rec = Recorder(session, p, seed)
        session.run(rec)
        tokens = session.state.tokens
        target, draft = greedy_target(pair, tokens), greedy_draft(pair, tokens)
        for pos in range(len(ids), len(tokens)):
            if pos in rec.kept_positions:
                # a kept token is the draft's greedy token there, and the target disagreed
                assert tokens[pos] == draft[pos - 1] != target[pos - 1]
            else:
                assert tokens[pos] == target[pos - 1], f"position {pos}: accepted without a rule"
        for r in session.state.records:  # tokens accepted after a kept one in the same block
            continued += sum(1 for j in range(1, r.accepted_len) if r.context_len + j - 1 in rec.kept_positions)
    assert continued > 0, "no block went on after a kept draft token: the continuation is untested"


def test_kept_draft_token_continues_the_block_without_a_new_target_forward(pair):
    """After a kept mismatch, the next drafted tokens are judged against the logits the one
    verification forward already computed: the target runs once per cycle."""
    dec = SpeculativeDecoder(pair)
    ids = pair.encode(PROMPTS[0])
    state = dec.start(ids, 40)
    calls = []
    hook = pair.target.register_forward_hook(lambda *a: calls.append(1))
    try:
        cycle = ArbitratedCycle(dec, state, 6)
        while (m := cycle.next_mismatch()) is not None:
            cycle.keep(True)
        record = cycle.finish()
    finally:
        hook.remove()
    assert len(calls) == 1
    assert record.accepted_len == len(record.draft_tokens) == 6  # always keeping the draft accepts all
    assert m is None


def test_keep_without_a_pending_mismatch_is_an_error(pair):
    dec = SpeculativeDecoder(pair)
    session = ArbitrationSession(dec, pair.encode(PROMPTS[1]), 20, 4)
    with pytest.raises(SpecGymError, match="no mismatch is pending"):
        session.decide(True)


def test_sampling_decoder_is_refused(pair):
    from envs.specdec.sampling import SamplingConfig

    dec = SpeculativeDecoder(pair, SamplingConfig(temperature=1.0))
    state = dec.start(pair.encode(PROMPTS[1]), 10)
    with pytest.raises(SpecGymError, match="greedily"):
        ArbitratedCycle(dec, state, 4)
