"""Forward latency of a model as the pair recipes' model cards report it."""

from __future__ import annotations

import statistics
import time

import torch


@torch.inference_mode()
def forward_latency_ms(
    model, context: int = 200, n_tokens: int = 1, repeats: int = 10, warmup: int = 3, seed: int = 0
) -> float:
    """Median wall time (ms) of one cached forward of ``n_tokens`` after ``context`` tokens.

    This is one draft step (n_tokens=1) or one verification of n_tokens candidates: the cache
    is cropped back to ``context`` after every call so each one sees the same state.
    """
    from transformers import DynamicCache

    from envs.specdec.cache import forward_with_cache

    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(seed)
    prefix = torch.randint(0, vocab, (1, context), generator=gen)
    step = torch.randint(0, vocab, (1, n_tokens), generator=gen)
    cache = DynamicCache(config=model.config)
    forward_with_cache(model, cache, input_ids=prefix)
    positions = torch.arange(context, context + n_tokens).unsqueeze(0)
    times = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        forward_with_cache(model, cache, input_ids=step, position_ids=positions)
        elapsed = time.perf_counter() - start
        # transformers 5.x only accepts a negative crop (tokens to drop).
        cache.crop(-(cache.get_seq_length() - context))
        if i >= warmup:
            times.append(elapsed * 1000.0)
    return statistics.median(times)
