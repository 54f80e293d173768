"""KV caches: one forward that passes a cache the way the installed transformers asks, and
trimming after verification (transformers 4.57 through 5.x)."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from functools import cache as memoise
from typing import Any

import torch
from transformers import DynamicCache


@memoise
def _cache_argument(model_class: type) -> str:
    # transformers 5.24 renamed forward's ``past_key_values`` to ``cache`` (the old name warns and
    # goes in 5.40); the floor version knows only the old one, so ask the signature
    params = inspect.signature(model_class.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def forward_with_cache(model: torch.nn.Module, cache: DynamicCache, **inputs: Any) -> Any:
    """``model(**inputs)`` reading and extending ``cache``; returns the model's output."""
    return model(**inputs, **{_cache_argument(type(model)): cache}, use_cache=True)


def keep_positions(cache: DynamicCache, prefix: int, extra: Sequence[int] = ()) -> None:
    """Keep cache positions ``[0, prefix)`` followed by the positions in ``extra``.

    ``extra`` lists cache positions (>= prefix, increasing) of accepted tree nodes.
    When they directly follow the prefix (every chain, most trees) a crop is enough;
    otherwise the kept keys/values are gathered per layer.
    """
    length = cache.get_seq_length()
    if all(pos == prefix + i for i, pos in enumerate(extra)):
        keep = prefix + len(extra)
        if keep < length:
            # negative crop is the form that works across transformers 4.57 and 5.x
            cache.crop(-(length - keep))
        return
    index = torch.tensor([*range(prefix), *extra], device=cache.layers[0].keys.device)
    for layer in cache.layers:
        layer.keys = layer.keys.index_select(-2, index)
        layer.values = layer.values.index_select(-2, index)
