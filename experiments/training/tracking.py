"""Weights & Biases runs: offline when no key is configured, ``WANDB_MODE`` respected."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any


def wandb_mode(requested: str | None) -> str:
    """``--wandb-mode`` > ``WANDB_MODE`` > online if a key is configured, else offline."""
    if requested:
        return requested
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        if netrc.netrc().authenticators("api.wandb.ai"):
            return "online"
    except (OSError, netrc.NetrcParseError):
        pass
    return "offline"


def start_run(
    *, project: str, entity: str | None, mode: str | None, name: str, group: str, config: dict[str, Any], run_dir: Path
):
    """A W&B run that mirrors SB3's TensorBoard logs; ``wandb sync`` uploads an offline one later."""
    import wandb

    return wandb.init(
        project=project,
        entity=entity,
        name=name,
        group=group,
        config=config,
        dir=str(run_dir),
        mode=wandb_mode(mode),
        sync_tensorboard=True,
        reinit="finish_previous",
    )
