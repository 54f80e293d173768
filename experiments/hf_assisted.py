"""transformers' assisted generation, run as a baseline against our own loop."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import GenerationConfig

from envs.specdec import ModelPair


def hf_assisted_generate(pair: ModelPair, prompt_ids: Sequence[int], max_new_tokens: int, k: int | None) -> list[int]:
    """Greedy ``generate(assistant_model=...)``: fixed ``k`` drafts, or transformers' dynamic default.

    The assistant's settings live on the draft's ``generation_config``; kwargs to ``generate``
    are ignored there. Fixed ``k``: constant schedule and no confidence stop.
    """
    cfg = pair.draft.generation_config
    if k is None:
        # transformers' own defaults (20 tokens, confidence stop at 0.4 that adapts during a call),
        # read from transformers rather than copied: 5.x keeps them in a static method, 4.x on
        # the config; reset every call because the adapted threshold persists on the assistant
        defaults = getattr(GenerationConfig, "_get_default_generation_params", None)
        values = defaults() if defaults else vars(GenerationConfig())
        for key in (
            "num_assistant_tokens",
            "num_assistant_tokens_schedule",
            "assistant_confidence_threshold",
        ):
            setattr(cfg, key, values[key])
    else:
        cfg.num_assistant_tokens, cfg.num_assistant_tokens_schedule = k, "constant"
        cfg.assistant_confidence_threshold = 0.0
    eos = sorted(pair.eos_token_ids) or None
    ids = torch.tensor([list(prompt_ids)], device=pair.device)
    with torch.no_grad():
        out = pair.target.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            assistant_model=pair.draft,
            do_sample=False,
            max_new_tokens=max_new_tokens,
            eos_token_id=eos,
            pad_token_id=eos[0] if eos else 0,
        )
    return out[0, ids.shape[1] :].tolist()
