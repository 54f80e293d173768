"""Data splits and the reasoning-gym seed each draws from: the one place a split becomes a seed.

Training draws from ``TRAIN_SEED``, every held-out evaluation from ``HELDOUT_SEED``, and the
choices a method makes before its held-out evaluation (thresholds, ablations) from
``VALIDATION_SEED``; reasoning-gym derives item ``i`` from ``seed + i``, and the three ranges never
overlap for fewer than 8,000 items, so held-out numbers are on prompts no recipe, policy or tuning saw.
"""

from __future__ import annotations

from envs.specdec.errors import SpecGymError

TRAIN_SEED = 1_000
HELDOUT_SEED = 9_000
VALIDATION_SEED = 17_000
SEEDS = {"train": TRAIN_SEED, "heldout": HELDOUT_SEED, "validation": VALIDATION_SEED}
SPLITS = tuple(SEEDS)


def split_seed(split: str) -> int:
    """The seed of ``split`` (``train``, ``heldout`` or ``validation``)."""
    if split not in SEEDS:
        raise SpecGymError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    return SEEDS[split]
