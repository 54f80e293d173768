"""``python -m experiments.train``'s options as one typed dataclass (CleanRL style): the parser fills
it, a resumed run restores it from ``run.json``, and the training, evaluation and tracking code read
it; changes make a new copy (``dataclasses.replace``) instead of mutating a shared namespace."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

DEFAULT_PAIR = "gsm"  # bundled with the repository: the default experiment needs no build
TRAINED_ROLES = ("draft", "verify")  # the co-adaptive ones (joint decides both at once)


@dataclass(frozen=True)
class TrainArgs:
    env: str = "all"
    pair: str = DEFAULT_PAIR
    task: str | None = None
    backend: str = "replay"
    traces: str | None = None
    eval_traces: str | None = None
    prompts: str | None = None
    n_items: int | None = None
    eval_items: int | None = None  # arbitration held-out items; None: the config's eval_items
    validation_items: int = 0  # 0: the rule baselines are tuned on the training record
    cost_model: str = "auto"
    cost_family: str | None = None
    cost_features: str = "auto"
    roles: list[str] = field(default_factory=lambda: list(TRAINED_ROLES))
    rounds: int | None = None
    timesteps: int | None = None
    n_envs: int | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    config: str | None = None
    exp: str | None = None
    runs_dir: str = "runs"
    resume: str | None = None
    wandb_project: str = "specgym"
    wandb_entity: str | None = None
    wandb_mode: str | None = None
    threads: int = 1
    device: str = "auto"
    no_progress: bool = False
    vec_env: str = "auto"
    workers: int | None = None
    ray_address: str | None = None

    @classmethod
    def from_dict(cls, options: dict[str, Any]) -> TrainArgs:
        """From parsed options or a run's saved ones (keys this version does not know are dropped)."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in options.items() if key in known})
