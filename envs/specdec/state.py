"""Per-generation decoding state and the small utilities drafting and verification share."""

from __future__ import annotations

import time
from collections.abc import Sequence
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
    cached: int,
    prefixes: Sequence[int] | torch.Tensor,
    extras: Sequence[Sequence[int]] | torch.Tensor,
    dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor:
    """4D additive mask for ``len(prefixes)`` new tokens on top of ``cached`` cache entries: the one
    tree mask, for drafting, verification and trace recording.

    Row ``r`` sees cache columns ``[0, prefixes[r])``, the columns in ``extras[r]`` (its tree
    ancestors: lists, or a [q, a] tensor) and itself (column ``cached + r``).
    """
    q = len(prefixes)
    rows = torch.arange(q, device=device)
    own = cached + rows
    if not torch.is_tensor(extras):  # ragged lists: pad each row with its own column (allowed anyway)
        a = max((len(e) for e in extras), default=0)
        extras = [list(e) + [cached + r] * (a - len(e)) for r, e in enumerate(extras)]
        extras = torch.tensor(extras, dtype=torch.long, device=device).reshape(q, a)
    prefixes = torch.as_tensor(prefixes, device=device)
    allowed = torch.arange(cached + q, device=device)[None, :] < prefixes[:, None]
    allowed[rows[:, None].expand_as(extras), extras] = True
    allowed[rows, own] = True
    mask = torch.zeros(q, cached + q, dtype=dtype, device=device).masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[None, None]
