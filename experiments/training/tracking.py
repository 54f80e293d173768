"""Weights & Biases runs: offline when no key is configured, ``WANDB_MODE`` respected."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from envs.specdec.errors import SpecGymError


def api_key_configured() -> bool:
    """Whether W&B has credentials without asking the network or a person: ``WANDB_API_KEY`` (or an
    identity token file), else a netrc entry for the W&B host (where ``wandb login`` saves the key)."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlsplit(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname or "api.wandb.ai"
    try:
        return bool(netrc.netrc(os.environ.get("NETRC") or None).authenticators(host))
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_mode(requested: str | None) -> str:
    """``--wandb-mode`` > ``WANDB_MODE`` > online if a key is configured, else offline."""
    if requested:
        return requested
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if api_key_configured() else "offline"


def check_wandb_mode(requested: str | None) -> None:
    """Refuse online tracking with no key before any work: W&B would otherwise stop the run at its
    start with an interactive login prompt or a network error."""
    if wandb_mode(requested) == "online" and not api_key_configured():
        raise SpecGymError(
            "W&B mode online needs an API key and none is configured; run `wandb login` (or set "
            "WANDB_API_KEY), or pass --wandb-mode offline (`wandb sync` uploads the run later)"
        )


def tensorboard_dir(run_dir: Path) -> Path:
    """Where a run's TensorBoard logs go: SB3 writes each stage's in a directory of its own below
    it (``tb/draft_round1_1``, ``tb/verify_round1_1``, ... ``tb/arbiter_1``)."""
    return run_dir / "tb"


def start_run(
    *, project: str, entity: str | None, mode: str | None, name: str, group: str, config: dict[str, Any], run_dir: Path
):
    """A W&B run that mirrors SB3's TensorBoard logs; ``wandb sync`` uploads an offline one later.

    A co-adaptive run writes one TensorBoard directory per stage. Told their common root, W&B
    names each stage's metrics by its directory (``draft_round1_1/rollout/ep_rew_mean``); with
    ``sync_tensorboard=True`` alone it guesses and warns once per further directory, counting
    across the runs of the process too. Close with :func:`finish_run`."""
    import wandb

    mode = wandb_mode(mode)
    _unpatch_tensorboard()  # a previous run's root (another run directory) in this process
    if mode != "disabled":  # as wandb.init itself: a disabled run patches nothing
        wandb.tensorboard.patch(root_logdir=str(tensorboard_dir(run_dir)))
    return wandb.init(
        project=project,
        entity=entity,
        name=name,
        group=group,
        config=config,
        dir=str(run_dir),
        mode=mode,
        sync_tensorboard=True,  # already patched with the root: wandb.init keeps that patch
        reinit="finish_previous",
    )


def finish_run(run) -> None:
    """Finish a :func:`start_run` run and take its TensorBoard patch off, so that TensorBoard
    writers outside its root (a later untracked run in this process) are left alone."""
    try:
        run.finish()
    finally:
        _unpatch_tensorboard()


def _unpatch_tensorboard() -> None:
    import wandb

    if wandb.patched["tensorboard"]:
        wandb.tensorboard.unpatch()


def draft_verify_logs(evaluation: dict[str, Any]) -> dict[str, Any]:
    """A DraftVerify evaluation's action histograms (``wandb.Histogram`` per policy and action, and
    one ``wandb.Table`` of every policy's counts), the learned policy's departure from the best rule,
    and per category its ratios, for ``run.log``."""
    import numpy as np
    import wandb

    pol = evaluation["policies"]
    logs: dict[str, Any] = {}
    rows = []
    for name, row in pol.items():
        for action, counts in row.get("actions", {}).items():
            rows += [[name, action, int(value), count] for value, count in counts.items()]
            if counts:
                top = max(int(v) for v in counts)
                hist = [counts.get(str(v), 0) for v in range(top + 1)]
                edges = np.arange(top + 2) - 0.5  # one bin per action value
                logs[f"actions/{name}/{action}"] = wandb.Histogram(np_histogram=(hist, edges))
    logs["actions/table"] = wandb.Table(columns=["policy", "action", "value", "cycles"], data=rows)
    for role, share in evaluation["learned_departure_from_best_rule"].items():
        if role != "decisions" and share is not None:
            logs[f"eval/learned_departure_from_best_rule/{role}"] = share
    for category, facts in evaluation.get("categories", {}).items():
        for key in ("learned_over_best_static", "learned_over_best_rule"):
            logs[f"eval/category/{category}/{key}"] = facts[key]
        logs[f"eval/category/{category}/learned_fraction_of_oracle"] = evaluation["per_category"][category]["learned"][
            "fraction_of_oracle"
        ]
    return logs
