"""Sampling SpD must follow the target's distribution, on every drafting mode.

On a 4-token vocabulary every 3-token continuation (64 of them) has an exact probability
under the target (temperature, top-p applied), so a chi-square goodness-of-fit test on
thousands of SpD samples checks the acceptance rule. The same test must reject a known
wrong rule (resampling from p instead of the residual after a rejection), which shows it
has the power to catch one.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from envs.pairs.tiny import tiny_random_pair
from envs.specdec import SamplingConfig, SpeculativeDecoder, shortlist
from envs.specdec import verify as verify_module
from envs.specdec.sampling import sampling_probs

# thousands of sampled decodes per mode: once per CI run (.ci/run), on the newest transformers
pytestmark = pytest.mark.once

PROMPT = [1, 0, 3, 2, 2]
N_TOKENS = 3
N_SAMPLES = 3000


def exact_distribution(pair, cfg: SamplingConfig) -> dict[tuple[int, ...], float]:
    """P(x1..x3 | prompt) from one batched target forward over every continuation."""
    v = pair.vocab_size
    seqs = list(itertools.product(range(v), repeat=N_TOKENS))
    batch = torch.tensor([PROMPT + list(s[:-1]) for s in seqs])
    with torch.no_grad():
        logits = pair.target(input_ids=batch).logits[:, len(PROMPT) - 1 :]
    probs = sampling_probs(logits, cfg)
    out = {}
    for row, seq in enumerate(seqs):
        out[seq] = float(np.prod([probs[row, i, t].item() for i, t in enumerate(seq)]))
    return out


def spd_counts(pair, cfg: SamplingConfig, shape: dict) -> dict[tuple[int, ...], int]:
    dec = SpeculativeDecoder(pair, cfg)
    counts: dict[tuple[int, ...], int] = {}
    for seed in range(N_SAMPLES):
        seq = tuple(dec.generate(PROMPT, N_TOKENS, seed=seed, **shape).tokens)
        counts[seq] = counts.get(seq, 0) + 1
    return counts


def fit_pvalue(pair, cfg: SamplingConfig, shape: dict) -> float:
    exact = exact_distribution(pair, cfg)
    counts = spd_counts(pair, cfg, shape)
    assert set(counts) <= {s for s, p in exact.items() if p > 0}, "SpD produced an impossible sequence"
    # pool cells with small expected counts so the chi-square approximation holds
    cells = sorted(exact, key=exact.get, reverse=True)
    expected = np.array([exact[c] * N_SAMPLES for c in cells])
    observed = np.array([counts.get(c, 0) for c in cells], dtype=float)
    big = expected >= 5
    exp_cells = np.append(expected[big], expected[~big].sum())
    obs_cells = np.append(observed[big], observed[~big].sum())
    if exp_cells[-1] == 0:
        exp_cells, obs_cells = exp_cells[:-1], obs_cells[:-1]
    exp_cells *= obs_cells.sum() / exp_cells.sum()
    return float(chisquare(obs_cells, exp_cells).pvalue)


MODES = {
    "chain-k1": {"k": 1},
    "chain-k4": {"k": 4},
    "tree-d2w3": {"depth": 2, "width": 3},
    "tree-verify-subset": {"depth": 2, "width": 2, "n_verify": 2},
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cfg", [SamplingConfig(1.0), SamplingConfig(0.7, top_p=0.8)], ids=["T1", "T0.7-p0.8"])
def test_sampling_matches_target_distribution(small_vocab_pair, mode, cfg):
    assert fit_pvalue(small_vocab_pair, cfg, MODES[mode]) > 1e-3


@pytest.mark.parametrize("mode", ["chain-k4", "tree-d2w3"])
def test_shortlisted_draft_keeps_target_distribution(mode):
    """A draft that can never propose token 2 (probability 0 under q) changes nothing about p."""
    pair = tiny_random_pair(3, vocab_size=4, dtype=torch.float64, eos=False, residual_scale=0.5)
    shortlist.apply(pair.draft, torch.tensor([0, 1, 3]))
    assert fit_pvalue(pair, SamplingConfig(1.0), MODES[mode]) > 1e-3


def test_target_only_sampling_matches_enumeration(small_vocab_pair):
    """The reference sampler itself agrees with the enumeration (checks the test's own maths)."""
    cfg = SamplingConfig(1.0)
    dec = SpeculativeDecoder(small_vocab_pair, cfg)
    exact = exact_distribution(small_vocab_pair, cfg)
    counts: dict[tuple[int, ...], int] = {}
    for seed in range(N_SAMPLES):
        seq = tuple(dec.generate_target(PROMPT, N_TOKENS, seed=seed).tokens)
        counts[seq] = counts.get(seq, 0) + 1
    top = max(exact, key=exact.get)
    assert abs(counts.get(top, 0) / N_SAMPLES - exact[top]) < 4 * np.sqrt(exact[top] / N_SAMPLES)


def test_wrong_rule_is_detected(small_vocab_pair, monkeypatch):
    """After a rejection, sampling from p instead of norm(max(p - q, 0)) biases the output."""

    def wrong(tree, selected, p, generator):
        uniforms = torch.rand(len(selected), generator=generator).tolist()
        for j, n in enumerate(selected):
            q, x = tree.q[n], tree.tokens[n]
            if uniforms[j] * float(q[x]) >= float(p[j, x]):
                return selected[:j], verify_module.sample(p[j], generator)
        return list(selected), verify_module.sample(p[len(selected)], generator)

    monkeypatch.setattr(verify_module, "_reject_chain", wrong)
    assert fit_pvalue(small_vocab_pair, SamplingConfig(1.0), {"k": 4}) < 1e-3
