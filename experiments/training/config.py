"""RL-Zoo style hyperparameter files: ``env id -> hyperparameters``, with a ``default:`` fallback.

Unknown keys are an error naming the valid ones, never silently ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from envs.specdec.errors import SpecGymError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"

# MaskablePPO constructor arguments we pass through, plus our own run settings
PPO_KEYS = {
    "policy",
    "learning_rate",
    "n_steps",
    "batch_size",
    "n_epochs",
    "gamma",
    "gae_lambda",
    "clip_range",
    "ent_coef",
    "vf_coef",
    "max_grad_norm",
    "target_kl",
    "policy_kwargs",
    "normalize_advantage",
}
RUN_KEYS = {"n_timesteps", "n_envs", "eval_freq", "n_eval_episodes", "checkpoint_freq", "env_kwargs", "rounds"}


def load_config(path: str | Path, env_id: str, pair: str | None = None) -> dict[str, Any]:
    """Hyperparameters for ``env_id``: ``default:``, then its own entry, then the pair's
    ``"@<pair>"`` entry if the file has one (settings a pair needs for every env id of the file)."""
    path = Path(path)
    if not path.is_file():
        raise SpecGymError(f"config file {str(path)!r} not found; see {CONFIG_DIR} for examples")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SpecGymError(f"{path} is not valid YAML ({exc})") from None
    layers = [data.get("default", {}), data.get(env_id, {}), data.get(f"@{pair}", {}) if pair else {}]
    merged = {k: v for layer in layers for k, v in layer.items()}
    merged["env_kwargs"] = {k: v for layer in layers for k, v in layer.get("env_kwargs", {}).items()}
    unknown = sorted(set(merged) - PPO_KEYS - RUN_KEYS)
    if unknown:
        raise SpecGymError(f"{path}: unknown key(s) {unknown}; valid keys: {sorted(PPO_KEYS | RUN_KEYS)}")
    return merged


def split(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(PPO constructor kwargs, run settings)."""
    return {k: v for k, v in config.items() if k in PPO_KEYS}, {k: v for k, v in config.items() if k in RUN_KEYS}
