"""RL-Zoo style hyperparameter files: ``env id -> hyperparameters``, with a ``default:`` fallback.

Unknown keys (also ``env_kwargs`` keys the env's constructor does not take) and values of the
wrong type are an error naming the file and the key, never silently ignored or left to fail
inside SB3.
"""

from __future__ import annotations

import inspect
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
RUN_KEYS = {
    "n_timesteps",
    "n_envs",
    "eval_freq",
    "n_eval_episodes",
    "checkpoint_freq",
    "env_kwargs",
    "rounds",
    "bc_epochs",  # Arbitration on replay: behaviour-cloning epochs on the oracle's choices before PPO
    "eval_items",  # Arbitration: held-out items the run is evaluated on (--eval-items overrides it)
}

COUNT_KEYS = {
    "n_timesteps",
    "n_envs",
    "eval_freq",
    "n_eval_episodes",
    "checkpoint_freq",
    "rounds",
    "bc_epochs",
    "eval_items",
}  # int()-ed
INT_KEYS = {"n_steps", "batch_size", "n_epochs"} | COUNT_KEYS
NUMBER_KEYS = {"learning_rate", "gamma", "gae_lambda", "clip_range", "ent_coef", "vf_coef", "max_grad_norm"}
# key -> (accepted types, what the message calls them); target_kl may be null (no limit)
TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    **{key: ((int,), "an integer >= 1") for key in INT_KEYS},
    **{key: ((int, float), "a number") for key in NUMBER_KEYS},
    "target_kl": ((int, float, type(None)), "a number or null"),
    "policy": ((str,), "a policy name such as MlpPolicy"),
    "policy_kwargs": ((dict,), "a mapping"),
    "normalize_advantage": ((bool,), "true or false"),
    "env_kwargs": ((dict,), "a mapping"),
}


def _check_types(path: Path, layer: dict[str, Any], where: str) -> None:
    for key, value in layer.items():
        if key not in TYPES:
            continue  # unknown keys are reported after the merge, with the valid ones
        kinds, wanted = TYPES[key]
        if key in COUNT_KEYS and isinstance(value, float) and value.is_integer():
            value = int(value)  # 40000.0 steps: read with int() where used
        wrong_type = isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds)
        if wrong_type or key in INT_KEYS and value < 1:
            hint = " (YAML reads 3e-4 as text: write 3.0e-4)" if isinstance(value, str) and wanted == "a number" else ""
            raise SpecGymError(f"{path}: {where}{key} must be {wanted}, got {value!r}{hint}")


def env_parameters(env_id: str) -> set[str] | None:
    """The keyword arguments the registered env's constructor takes (None: not a registered id, or
    one taking any ``**kwargs``)."""
    import gymnasium as gym
    from gymnasium.envs.registration import load_env_creator

    import envs  # noqa: F401  (registers the SpecGym ids)

    try:
        entry = gym.spec(env_id).entry_point
    except gym.error.Error:
        return None
    params = inspect.signature(load_env_creator(entry) if isinstance(entry, str) else entry).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return set(params)


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
    if not isinstance(data, dict):
        raise SpecGymError(
            f"{path}: the top level must be a mapping of env ids (and default:) to settings, not a "
            f"{type(data).__name__}; see {CONFIG_DIR / 'draft_verify.yaml'}"
        )
    names = ["default", env_id, *([f"@{pair}"] if pair else [])]
    layers = [data.get(name) or {} for name in names]
    for name, layer in zip(names, layers, strict=True):
        if not isinstance(layer, dict):
            raise SpecGymError(f"{path}: {name} must be a mapping of settings, not {layer!r}")
        _check_types(path, layer, f"{name}: ")
    merged = {k: v for layer in layers for k, v in layer.items()}
    merged["env_kwargs"] = {k: v for layer in layers for k, v in layer.get("env_kwargs", {}).items()}
    unknown = sorted(set(merged) - PPO_KEYS - RUN_KEYS)
    if unknown:
        raise SpecGymError(f"{path}: unknown key(s) {unknown}; valid keys: {sorted(PPO_KEYS | RUN_KEYS)}")
    accepted = env_parameters(env_id)
    unknown = sorted(set(merged["env_kwargs"]) - accepted) if accepted is not None else []
    if unknown:
        raise SpecGymError(f"{path}: unknown env_kwargs key(s) {unknown} for {env_id}; valid keys: {sorted(accepted)}")
    return merged


def split(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(PPO constructor kwargs, run settings)."""
    return {k: v for k, v in config.items() if k in PPO_KEYS}, {k: v for k, v in config.items() if k in RUN_KEYS}
