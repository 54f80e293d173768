"""KV-cache trimming after verification, for transformers' DynamicCache (4.57 and 5.x)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import DynamicCache


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
