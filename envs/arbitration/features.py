"""SpecGym/Arbitration's observation at a mismatch; the layout is in ``ArbitrationEnv``'s docstring."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from envs.pairs import shared_pair
from envs.specdec.arbitrate import ArbitrationSession, Mismatch
from envs.tasks.math import ANSWER_MARK

COUNT_SCALE = 32.0


@lru_cache(maxsize=4)
def token_classes(pair_name: str, device: str, dtype: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Per token id of the pair's vocabulary: :func:`class_flags` and digit-ness."""
    pair = shared_pair(pair_name, device, dtype)
    flags = class_flags(pair.tokenizer, pair.vocab_size)
    return flags, flags[:, 0].astype(bool)


def class_flags(tokenizer, vocab_size: int) -> np.ndarray:
    """Per token id: flags digit, operator, answer marker, newline, space, read from the token's
    decoded text, so a BPE token (SmolLM2's ``" +"``, ``"####"``, ``" "``) gets its class by what it
    spells, whitespace aside; ids past the tokenizer's (padding rows of the embedding) get none."""
    flags = np.zeros((vocab_size, 5), dtype=np.float32)
    if tokenizer is None:
        return flags
    for i in range(min(vocab_size, len(tokenizer))):
        s = tokenizer.decode([i])
        core = s.strip()
        flags[i] = (
            bool(core) and core.isdigit(),
            bool(core) and all(c in "+-*/=x×÷" for c in core),
            "#" in s,
            "\n" in s,
            bool(s) and s.isspace() and "\n" not in s,
        )
    return flags


def features(
    m: Mismatch, session: ArbitrationSession, k: int, max_new: int, classes: np.ndarray, text: str, log_vocab: float
) -> np.ndarray:
    """The observation at mismatch ``m`` (layout in :class:`ArbitrationEnv`'s docstring)."""
    gap = np.log(max(m.p_target_of_draft, 1e-30)) - np.log(max(m.p_target_of_target, 1e-30))
    earlier = session.mismatches - 1
    digits = len(text) - len(text.rstrip("0123456789"))
    head = [
        m.p_draft_of_draft,
        m.p_draft_of_target,
        m.p_target_of_draft,
        m.p_target_of_target,
        m.draft_entropy / log_vocab,
        m.target_entropy / log_vocab,
        m.draft_margin,
        m.target_margin,
        1.0 + float(np.clip(gap / 20.0, -1.0, 0.0)),
        m.index / k,
        m.block / k,
        min(len(session.new_tokens) / max_new, 1.0),
        min(session.mismatches / COUNT_SCALE, 1.0),
        min(session.draft_kept / COUNT_SCALE, 1.0),
        session.draft_kept / earlier if earlier > 0 else 0.0,
    ]
    tail = [float(ANSWER_MARK in text), min(digits / 8.0, 1.0)]
    obs = np.concatenate([head, classes[m.draft_token], classes[m.target_token], tail]).astype(np.float32)
    return np.clip(obs, 0.0, 1.0)
