"""Shipping: the trained weights and model card of a build, copied into the repository's assets,
and a pair assembled from them on a machine that has only the base models."""

from __future__ import annotations

import shutil
from pathlib import Path

from envs.pairs.smollm2_math.build import is_complete
from envs.pairs.smollm2_math.weights import DRAFT_LAYERS, LORA, assemble
from envs.specdec.errors import SpecGymError
from envs.specdec.files import staged_dir

CARD = ("README.md", "recipe.json")


def export(pair_dir: Path, assets: Path) -> Path:
    """Copy a finished build's ``weights/`` and model card into ``assets`` (staged)."""
    if not is_complete(pair_dir):
        raise SpecGymError(f"{pair_dir} holds no finished smollm2-math build; run build_pair smollm2-math first")
    with staged_dir(assets) as tmp:
        for part in (LORA, DRAFT_LAYERS):
            shutil.copytree(pair_dir / "weights" / part, tmp / part)
        for name in CARD:
            shutil.copy2(pair_dir / name, tmp / name)
    return assets


def built_here(pair_dir: Path) -> bool:
    """True when ``pair_dir`` holds a finished build made on this machine (its own ``weights/``)."""
    return is_complete(pair_dir) and (pair_dir / "weights").is_dir()


def is_current(pair_dir: Path, assets: Path) -> bool:
    """True when ``pair_dir`` holds a finished pair that is either built on this machine or
    assembled from the weights now shipped in ``assets`` (same recipe); False for an assembly of
    an older shipping, which the next load replaces."""
    if built_here(pair_dir):
        return True
    card = pair_dir / "recipe.json"
    return is_complete(pair_dir) and card.read_bytes() == (assets / "recipe.json").read_bytes()


def loaded_card(pair_dir: Path, assets: Path) -> Path:
    """The model card of the pair a load takes: a build made on this machine, else the shipped one
    (which the load assembles, :func:`is_current`)."""
    return (pair_dir if built_here(pair_dir) else assets) / "recipe.json"


def assemble_shipped(assets: Path, base_target: Path, base_draft: Path, pair_dir: Path) -> tuple[Path, Path]:
    """The pair in ``pair_dir`` from shipped weights (no training), replacing an assembly of older
    ones: the old completion marker goes first, the model card is copied last, the recipe.json
    that marks the pair complete after it."""
    (pair_dir / "recipe.json").unlink(missing_ok=True)
    paths = assemble(assets, base_target, base_draft, pair_dir)
    for name in CARD:  # recipe.json last: the completion marker
        shutil.copy2(assets / name, pair_dir / f".{name}.tmp")
        (pair_dir / f".{name}.tmp").replace(pair_dir / name)
    return paths
