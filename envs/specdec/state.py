"""Per-generation decoding state and the small utilities drafting and verification share."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from envs.specdec.cache import keep_positions
from envs.specdec.records import CycleRecord


@dataclass
class DecodeState:
    """One generation in progress.

    ``target_cached`` / ``draft_cached``: how many leading ``tokens`` each model's KV cache
    holds. The target always lags at least one token (the pending one it verifies next).
    """

    tokens: list[int]
    prompt_len: int
    max_len: int
    target_cache: DynamicCache
    draft_cache: DynamicCache
    device: torch.device
    generator: torch.Generator | None
    target_cached: int = 0
    draft_cached: int = 0
    prefill_time: float = 0.0
    stop_reason: str | None = None
    records: list[CycleRecord] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.stop_reason is not None

    @property
    def new_tokens(self) -> list[int]:
        return self.tokens[self.prompt_len :]

    @property
    def remaining(self) -> int:
        return self.max_len - len(self.tokens)

    def rewind(self, cached: int) -> None:
        """Cut both caches back to the first ``cached`` tokens (calibration re-times one context)."""
        keep_positions(self.target_cache, cached)
        keep_positions(self.draft_cache, cached)
        self.target_cached = self.draft_cached = cached


class Timer:
    """Wall-clock seconds of a block, synchronising CUDA so queued kernels count."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.elapsed = 0.0

    def __enter__(self) -> Timer:
        if self.cuda:
            torch.cuda.synchronize()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            torch.cuda.synchronize()
        self.elapsed = time.perf_counter() - self._start


def tree_attention_mask(
    cached: int, prefixes: list[int], extras: list[list[int]], dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """4D additive mask for ``len(prefixes)`` new tokens on top of ``cached`` cache entries.

    Row ``r`` sees cache columns ``[0, prefixes[r])``, the columns in ``extras[r]`` (its tree
    ancestors) and itself (column ``cached + r``).
    """
    q = len(prefixes)
    allowed = torch.zeros(q, cached + q, dtype=torch.bool)
    for r, (prefix, extra) in enumerate(zip(prefixes, extras, strict=False)):
        allowed[r, :prefix] = True
        allowed[r, extra] = True
        allowed[r, cached + r] = True
    mask = torch.zeros(q, cached + q, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[None, None].to(device)
