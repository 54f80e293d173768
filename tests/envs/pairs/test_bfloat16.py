"""bfloat16 pairs: when ``fast`` picks it, and greedy SpD in it is lossless up to numerical ties.

In bfloat16 a verify block of k+1 tokens and single-token steps reduce in different orders, so
where the target's top two logits (nearly) tie, SpD and target-only decoding may pick different
tokens, as on GPUs. These tests pin that down: every difference sits on a float32 near-tie, which
a wrong acceptance rule (keeping a draft token the target does not rank first) would not give.
"""

from __future__ import annotations

import pytest
import torch

from envs.pairs.registry import PAIRS, default_dtype, load_pair
from envs.pairs.tiny import tiny_random_pair
from envs.specdec import SpeculativeDecoder
from envs.specdec.pair import native_bf16_cpu, resolve_dtype
from experiments.benchmarks.common import divergences


def test_fast_dtype_is_bfloat16_only_where_native() -> None:
    cpu = resolve_dtype("fast", torch.device("cpu"))
    assert cpu == (torch.bfloat16 if native_bf16_cpu() else torch.float32)
    assert resolve_dtype("fast", torch.device("cuda")) == torch.bfloat16
    assert resolve_dtype(None, torch.device("cpu")) == torch.float32


def test_pair_default_dtype_reaches_the_loader(monkeypatch) -> None:
    seen = []
    spec = PAIRS["smollm2-135m"]
    assert spec.dtype == "fast"
    monkeypatch.setitem(PAIRS, spec.name, type(spec)(spec.name, spec.description, lambda d, t: seen.append(t), "fast"))
    load_pair("smollm2-135m", device="cpu")
    load_pair("smollm2-135m", device="cpu", dtype="float32")  # an explicit dtype wins
    assert seen == ["fast", "float32"]
    assert (default_dtype("smollm2-135m"), default_dtype("gsm"), default_dtype("my-pair")) == ("fast", None, None)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bfloat16_greedy_differs_only_at_ties(seed: int) -> None:
    pair = tiny_random_pair(seed, dtype=torch.bfloat16, eos=False)
    dec = SpeculativeDecoder(pair)
    gen = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(0, pair.vocab_size, (12,), generator=gen).tolist() for _ in range(6)]
    outputs = {"target_ar": [dec.generate_target(p, 40).tokens for p in prompts]}
    for k in (1, 3, 5):
        outputs[f"k{k}"] = [dec.generate(p, 40, k=k).tokens for p in prompts]
    outputs["tree"] = [dec.generate(p, 40, depth=3, width=2).tokens for p in prompts]
    found = divergences(pair, prompts, outputs)
    assert pair.target.dtype == torch.bfloat16  # the float32 check put it back
    reference = outputs["target_ar"]
    same = sum(o == r for m, outs in outputs.items() if m != "target_ar" for o, r in zip(outs, reference, strict=True))
    assert same >= len(prompts) * 2  # most outputs are identical token for token
    for d in found:
        # a tie: bfloat16 resolves a logit near 2 to 1/64; a real disagreement is far larger
        assert d["float32_logit_gap"] < 0.1, d
