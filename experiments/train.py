"""Train PPO agents on SpecGym environments.

    python -m experiments.train --env draft-verify --pair tiny-random --timesteps 20000
    python -m experiments.train --env arbitration --pair gsm --timesteps 30000

DraftVerify (LTD) is trained co-adaptively: the depth policy (role ``draft``) with the size
policy frozen as its partner, then the size policy (role ``verify``) with that depth policy
frozen, alternating for ``rounds`` rounds (LTD: 2 suffice). Arbitration (CoSpec) is one
PPO run. Each run writes
``runs/{env}__{exp}__{seed}__{time}/`` with the saved policies, checkpoints, TensorBoard logs,
``results.json`` and a W&B run (offline when no key is configured; ``wandb sync`` uploads it).
Ctrl-C saves a checkpoint; ``--resume RUN_DIR`` continues from it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from envs.specdec.errors import SpecGymError
from experiments.cli import run_main
from experiments.training.config import CONFIG_DIR, load_config
from experiments.training.ppo import TrainingInterrupted, train

ENVS = {"draft-verify": "SpecGym/DraftVerify-v0", "arbitration": "SpecGym/Arbitration-v0"}
CONFIGS = {"draft-verify": "draft_verify.yaml", "arbitration": "arbitration.yaml"}
DEFAULT_PAIRS = {"draft-verify": "tiny-random", "arbitration": "gsm"}
ROLES = ("draft", "verify")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m experiments.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--env", default="draft-verify", help=f"one of {', '.join(ENVS)} (default: draft-verify)")
    p.add_argument("--pair", help="registered pair name (default: tiny-random for draft-verify, gsm for arbitration)")
    p.add_argument("--task", help="arbitration: reasoning-gym task or GSM8K-format .jsonl (default: the config's)")
    p.add_argument("--backend", default="live", choices=["live", "replay"])
    p.add_argument("--traces", help="trace .npz for the replay backend (experiments.record_traces)")
    p.add_argument("--cost-model", default="analytic", help="analytic | measured | profile .json")
    p.add_argument("--roles", nargs="+", default=list(ROLES), choices=ROLES, help="roles to train, in order")
    p.add_argument("--rounds", type=int, help="co-adaptive rounds (default: from the config)")
    p.add_argument("--timesteps", type=int, help="timesteps per role per round (default: from the config)")
    p.add_argument("--n-envs", type=int, help="parallel environments (default: from the config)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--config", help=f"hyperparameter YAML (default: {CONFIG_DIR}/<env>.yaml)")
    p.add_argument("--exp", help="experiment name (run directory, W&B group; default: coadaptive | ppo)")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--resume", help="a run directory to continue")
    p.add_argument("--wandb-project", default="specgym")
    p.add_argument("--wandb-entity")
    p.add_argument("--wandb-mode", choices=["online", "offline", "disabled"])
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: small MLP updates only lose to thread contention)",
    )
    p.add_argument("--no-progress", action="store_true")
    return p


def env_kwargs_for(args: argparse.Namespace, config: dict[str, Any]) -> dict[str, Any]:
    kwargs = {**config["env_kwargs"], "pair": args.pair, "backend": args.backend, "cost_model": args.cost_model}
    if args.backend == "replay":
        if not args.traces:
            raise SpecGymError("--backend replay needs --traces FILE.npz (python -m experiments.record_traces)")
        kwargs["traces"] = args.traces
    kwargs.setdefault("split", "train")
    return kwargs


def coadaptive(args: argparse.Namespace, seed: int, run_dir: Path) -> dict[str, Any]:
    base = load_config(args.config, ENVS[args.env])
    rounds = args.rounds or int(base.get("rounds", 2))
    partners: dict[str, str | None] = {"draft": None, "verify": None}  # None: the env's default baseline
    stages = []
    tracking = args.wandb_mode != "disabled"
    for r in range(1, rounds + 1):
        for role in args.roles:
            role_id = f"SpecGym/DraftVerify-{role.capitalize()}-v0"
            config = load_config(args.config, role_id)
            if args.timesteps:
                config["n_timesteps"] = args.timesteps
            if args.n_envs:
                config["n_envs"] = args.n_envs
            kwargs = {**env_kwargs_for(args, config), "role": role}
            other = "verify" if role == "draft" else "draft"
            if partners[other]:
                kwargs["partner"] = partners[other]
            start = time.perf_counter()
            # the role-specific registered ids share width and depth, so the saved policies fit each other
            path = train(role_id, kwargs, config, run_dir, name=f"{role}_round{r}", seed=seed + r,
                         resume=bool(args.resume), tracking=tracking, progress=not args.no_progress)  # fmt: skip
            partners[role] = str(path)
            stages.append({"round": r, "role": role, "policy": str(path), "env_kwargs": kwargs,
                           "n_timesteps": config["n_timesteps"], "seconds": time.perf_counter() - start})  # fmt: skip
    return {"stages": stages, "policies": {role: partners[role] for role in args.roles}}


def arbitration(args: argparse.Namespace, seed: int, run_dir: Path) -> dict[str, Any]:
    """One PPO run on Arbitration (its two choices are always valid; the mask is all-true)."""
    env_id = ENVS["arbitration"]
    config = load_config(args.config, env_id)
    if args.timesteps:
        config["n_timesteps"] = args.timesteps
    if args.n_envs:
        config["n_envs"] = args.n_envs
    kwargs = {**config["env_kwargs"], "pair": args.pair}
    if args.task:
        kwargs["task"] = args.task
    kwargs.setdefault("split", "train")
    start = time.perf_counter()
    path = train(env_id, kwargs, config, run_dir, name="arbiter", seed=seed, resume=bool(args.resume),
                 tracking=args.wandb_mode != "disabled", progress=not args.no_progress)  # fmt: skip
    stage = {"policy": str(path), "env_kwargs": kwargs, "n_timesteps": config["n_timesteps"],
             "seconds": time.perf_counter() - start}  # fmt: skip
    return {"stages": [stage], "policies": {"arbiter": str(path)}}


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.env not in ENVS:
        raise SpecGymError(f"unknown env {args.env!r}; choose one of {', '.join(ENVS)}")
    args.pair = args.pair or DEFAULT_PAIRS[args.env]
    args.config = args.config or str(CONFIG_DIR / CONFIGS[args.env])
    args.exp = args.exp or ("coadaptive" if args.env == "draft-verify" else "ppo")
    for seed in args.seeds:
        if args.resume:
            run_dir = Path(args.resume)
            if not (run_dir / "run.json").is_file():
                raise SpecGymError(f"{run_dir} is not a run directory (no run.json); pass one from --runs-dir")
        else:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            run_dir = Path(args.runs_dir) / f"{args.env}__{args.exp}__{seed}__{stamp}"
            run_dir.mkdir(parents=True, exist_ok=False)
            (run_dir / "run.json").write_text(json.dumps({"argv": sys.argv[1:], "args": vars(args)}, indent=2))
        tracker = None
        if args.wandb_mode != "disabled":
            from experiments.training.tracking import start_run

            tracker = start_run(project=args.wandb_project, entity=args.wandb_entity, mode=args.wandb_mode,
                                name=run_dir.name, group=args.exp, config=vars(args), run_dir=run_dir)  # fmt: skip
        start = time.perf_counter()
        try:
            result = (coadaptive if args.env == "draft-verify" else arbitration)(args, seed, run_dir)
        except TrainingInterrupted as stop:
            print(f"interrupted: checkpoint {stop.checkpoint}; continue with --resume {run_dir}", file=sys.stderr)
            sys.exit(130)
        finally:
            if tracker is not None:
                tracker.finish()
        result |= {"env": args.env, "pair": args.pair, "seed": seed, "train_seconds": time.perf_counter() - start}
        (run_dir / "results.json").write_text(json.dumps(result, indent=2))
        print(f"run directory: {run_dir}")


if __name__ == "__main__":
    run_main(main)
