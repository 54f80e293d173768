"""Shared fixtures: tiny random pairs built from configs in seconds (never downloaded)."""

from __future__ import annotations

import pytest
import torch

from envs.specdec.tiny import tiny_random_pair

torch.set_num_threads(1)  # tiny models: threads only add contention


@pytest.fixture(scope="session", params=[0, 1, 2], ids=lambda s: f"seed{s}")
def greedy_pair(request):
    """float64, no EOS: long generations with no near-tie argmax flips from rounding."""
    return tiny_random_pair(request.param, dtype=torch.float64, eos=False)


@pytest.fixture(scope="session")
def text_pair():
    """The registered ``tiny-random`` pair: byte tokenizer, EOS on."""
    return tiny_random_pair(0)


@pytest.fixture(scope="session")
def small_vocab_pair():
    """Vocabulary of 4 for distribution tests: every 3-token continuation can be enumerated."""
    return tiny_random_pair(3, vocab_size=4, dtype=torch.float64, eos=False, residual_scale=0.5)
