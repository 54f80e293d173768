"""Greedy SpD must equal target greedy decoding token for token, for every drafting shape."""

from __future__ import annotations

import random

import pytest
import torch

from envs.specdec import SpeculativeDecoder

MAX_NEW = 48


def prompts(pair, n: int = 2) -> list[list[int]]:
    g = torch.Generator().manual_seed(pair.info["seed"])
    return [torch.randint(0, pair.vocab_size, (5 + 7 * i,), generator=g).tolist() for i in range(n)]


@pytest.fixture(scope="module")
def references(greedy_pair):
    dec = SpeculativeDecoder(greedy_pair)
    return {tuple(p): dec.generate_target(p, MAX_NEW).tokens for p in prompts(greedy_pair)}


@pytest.mark.parametrize("k", range(1, 9))
def test_chain_matches_target(greedy_pair, references, k):
    dec = SpeculativeDecoder(greedy_pair)
    for prompt, ref in references.items():
        out = dec.generate(list(prompt), MAX_NEW, k=k)
        assert out.tokens == ref
        assert len(out.tokens) == MAX_NEW and out.stop_reason == "length"


@pytest.mark.parametrize("depth", range(1, 5))
@pytest.mark.parametrize("width", range(1, 4))
def test_tree_matches_target(greedy_pair, references, depth, width):
    dec = SpeculativeDecoder(greedy_pair)
    for prompt, ref in references.items():
        assert dec.generate(list(prompt), MAX_NEW, depth=depth, width=width).tokens == ref


def test_trees_accept_off_first_branch(greedy_pair, references):
    """The lossless tree check is only meaningful if non-first branches get accepted (cache gather)."""
    dec = SpeculativeDecoder(greedy_pair)
    off_branch = 0
    for prompt in references:
        for rec in dec.generate(list(prompt), MAX_NEW, depth=4, width=3).records:
            first_child = {p: rec.parents.index(p) for p in rec.parents}  # lowest index per parent
            off_branch += any(n != first_child[rec.parents[n]] for n in rec.accepted)
    assert off_branch > 0


def test_variable_shape_per_cycle_matches_target(greedy_pair, references):
    """Depth, width and verification size may change every cycle (what the env policies do)."""
    dec = SpeculativeDecoder(greedy_pair)
    rng = random.Random(0)
    for prompt, ref in references.items():
        state = dec.start(list(prompt), MAX_NEW)
        while not state.done:
            depth, width = rng.randint(1, 5), rng.randint(1, 3)
            dec.cycle(state, depth, width, rng.randint(0, depth * width))
        assert state.new_tokens == ref


def test_records_are_consistent(greedy_pair, references):
    dec = SpeculativeDecoder(greedy_pair)
    prompt = next(iter(references))
    out = dec.generate(list(prompt), MAX_NEW, depth=3, width=2)
    assert sum(len(r.new_tokens) for r in out.records) == MAX_NEW
    for rec in out.records:
        assert rec.new_tokens[:-1] == [rec.draft_tokens[n] for n in rec.accepted][: len(rec.new_tokens) - 1]
        assert len(rec.target_probs) == len(rec.verified)
        assert all(0.0 <= p <= 1.0 for p in rec.draft_probs + rec.target_probs)
        # the accepted nodes form a root path in the verified set
        assert all(n in rec.verified for n in rec.accepted)
        assert [rec.parents[n] for n in rec.accepted] == [-1, *rec.accepted][: len(rec.accepted)]
        assert (rec.draft_time > 0) == (rec.draft_forwards > 0) and rec.verify_time > 0


def test_eos_stops_like_target(greedy_pair, references):
    """A token the target emits mid-run, declared EOS, stops both decoders at the same place."""
    for prompt, ref in references.items():
        eos = ref[len(ref) // 2]
        dec = SpeculativeDecoder(greedy_pair)
        dec.eos = {eos}
        expected = ref[: ref.index(eos) + 1]
        assert dec.generate_target(list(prompt), MAX_NEW).tokens == expected
        for shape in ({"k": 1}, {"k": 6}, {"depth": 3, "width": 3}):
            out = dec.generate(list(prompt), MAX_NEW, **shape)
            assert out.tokens == expected and out.stop_reason == "eos"
