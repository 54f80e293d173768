"""Shared fixtures: tiny random pairs built from configs in seconds (never downloaded)."""

from __future__ import annotations

import pytest
import torch

from envs.pairs.tiny import tiny_random_pair
from envs.specdec import shortlist

torch.set_num_threads(1)  # tiny models: threads only add contention


@pytest.fixture(scope="session", params=[0, 1, 2, "shortlist"], ids=lambda s: s if isinstance(s, str) else f"seed{s}")
def greedy_pair(request):
    """float64, no EOS: long generations with no near-tie argmax flips from rounding.

    ``shortlist``: a draft whose head scores every other token id only (envs/specdec/shortlist.py),
    so the target's token is often one the draft cannot propose.
    """
    if request.param == "shortlist":
        pair = tiny_random_pair(0, dtype=torch.float64, eos=False)
        shortlist.apply(pair.draft, torch.arange(0, pair.vocab_size, 2))
        return pair
    return tiny_random_pair(request.param, dtype=torch.float64, eos=False)


@pytest.fixture(scope="session")
def text_pair():
    """The registered ``tiny-random`` pair: byte tokenizer, EOS on."""
    return tiny_random_pair(0)


@pytest.fixture(scope="session")
def small_vocab_pair():
    """Vocabulary of 4 for distribution tests: every 3-token continuation can be enumerated."""
    return tiny_random_pair(3, vocab_size=4, dtype=torch.float64, eos=False, residual_scale=0.5)
