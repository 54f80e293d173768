"""Train PPO agents on SpecGym environments and evaluate them against their baselines.

    python -m experiments.train                      # the default experiment: both envs, gsm pair
    python -m experiments.train --env draft-verify --pair smollm2-135m --traces train.npz \\
        --eval-traces heldout.npz --cost-model profile.json
    python -m experiments.train --env arbitration --pair gsm --timesteps 30000 --seeds 0 1 2
    python -m experiments.train --env draft-verify --pair smollm2-135m --cost-family mixed

With no arguments (``--env all``): co-adaptive PPO on DraftVerify (replay of traces recorded on
first use, analytic cost model) and PPO on Arbitration, both on the bundled ``gsm`` pair, each
evaluated on held-out data against every baseline, then a results table.

DraftVerify (LTD) is trained co-adaptively: the depth policy (role ``draft``) with the size
policy frozen as its partner, then the size policy (role ``verify``) with that depth policy
frozen, alternating for ``rounds`` rounds (LTD: 2 suffice). Arbitration (CoSpec) is one
PPO run. Each run writes
``runs/{env}__{exp}__{seed}__{time}/`` with the saved policies, checkpoints, TensorBoard logs,
``results.json`` and a W&B run (offline when no key is configured; ``wandb sync`` uploads it).
After training each run holds ``evaluation.json``, ``results.md`` and PNG plots (learning
curves; DraftVerify throughput of every policy against k and the oracle; Arbitration accuracy
against speed), logged to the W&B run too. Several ``--seeds`` (or envs) add
``{runs-dir}/summary__{exp}__{time}.{json,md}`` with mean and spread over seeds (``...-2`` when
another summary of the same second has that name).
Ctrl-C saves a checkpoint; ``--resume RUN_DIR`` continues from it. PPO trains whole rollouts
(``n_steps x n_envs`` steps), so a ``--timesteps`` below one trains one: ``results.json`` records
each stage's budget (``n_timesteps``) and the steps it trained (``timesteps_trained``).
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from envs.arbitration.env import DEFAULT_ITEMS
from envs.pairs import check_pair_name
from envs.pairs.build import check_data_dir_writable, check_writable
from envs.specdec.cost_family import check_family_name
from envs.specdec.errors import SpecGymError
from envs.specdec.files import write_text_atomic
from envs.tasks.prompts import load_prompts
from experiments.artifacts import (
    check_split_source,
    default_branches,
    default_cost_model,
    default_trace_path,
    default_traces,
)
from experiments.cli import CommandParser, check_device, positive_int, run_main
from experiments.evaluate_arbitration import check_validation_items
from experiments.training.args import DEFAULT_PAIR, TRAINED_ROLES, TrainArgs
from experiments.training.clock import RunClock
from experiments.training.config import CONFIG_DIR, load_config
from experiments.training.ppo import TrainingInterrupted, VecSettings, train, trained_timesteps
from experiments.training.results import evaluate_run, headline, report_run, summarise
from experiments.training.tracking import check_wandb_mode
from experiments.workers import add_worker_args, check_workers

VEC_ENVS = ("auto", "dummy", "subproc", "ray")
DEFAULT_EVAL_ITEMS = 700  # arbitration held-out items when the config does not say
ENVS = {"draft-verify": "SpecGym/DraftVerify-v0", "arbitration": "SpecGym/Arbitration-v0"}
CONFIGS = {"draft-verify": "draft_verify.yaml", "arbitration": "arbitration.yaml"}


def build_parser() -> argparse.ArgumentParser:
    p = CommandParser(
        prog="python -m experiments.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--env", default="all", help=f"all | {' | '.join(ENVS)} (default: all, one after the other)")
    p.add_argument("--pair", default=DEFAULT_PAIR, help=f"registered pair name (default: {DEFAULT_PAIR})")
    p.add_argument("--task", help="arbitration: reasoning-gym task or GSM8K-format .jsonl (default: the config's)")
    p.add_argument(
        "--backend", default="replay", choices=["live", "replay"], help="trace/branch replay or live decoding"
    )
    p.add_argument(
        "--traces",
        help="training trace / branch record .npz, or bundled (the pair's shipped one; default: recorded on first use)",
    )
    p.add_argument(
        "--eval-traces", help="draft-verify held-out trace .npz, or bundled (default: recorded on first use)"
    )
    p.add_argument(
        "--prompts",
        help="draft-verify: the prompts of the traces recorded on first use, train and held-out splits apart: "
        "mix:chat (chat-style templates and the reasoning mix), reasoning-gym task names or task:NAME (default: "
        "the pair's: task:NAME for a task pair, else the reasoning mix)",
    )
    p.add_argument(
        "--eval-items",
        type=int,
        default=TrainArgs.eval_items,
        help="arbitration held-out items: 0 for no evaluation, else >= 2 (a paired interval needs two; "
        "default: the config's eval_items)",
    )
    p.add_argument(
        "--n-items",
        type=positive_int,
        default=None,
        help="arbitration: training items, from the train split's first (default: the config's)",
    )
    p.add_argument(
        "--validation-items",
        type=int,
        default=TrainArgs.validation_items,
        help="arbitration: validation items the rule baselines are tuned on; 0 (default): tune them on the "
        "training record, so the default experiment records no third split",
    )
    p.add_argument(
        "--cost-model",
        default="auto",
        help="auto (analytic for the toy pairs gsm and tiny-random, else the pair's profile on this device, "
        "calibrated on first use) | analytic | measured | profile .json | bundled (the pair's shipped profile)",
    )
    p.add_argument(
        "--cost-family",
        help="draft-verify: draw the cost model per episode from this family (calibrated | calibrated-perturbed | "
        "gpu | gpu-perturbed | mixed; envs/specdec/cost_family.py), --cost-model being its calibrated member "
        "(default: none, --cost-model every episode)",
    )
    p.add_argument(
        "--cost-features",
        default="auto",
        choices=["auto", "ratios", "profile"],
        help="draft-verify observation: the cost ratios only, or the cost profile's shape too "
        "(default auto: profile with --cost-family, else ratios)",
    )
    p.add_argument(
        "--roles", nargs="+", default=list(TRAINED_ROLES), choices=TRAINED_ROLES, help="roles to train, in order"
    )
    p.add_argument("--rounds", type=positive_int, help="co-adaptive rounds (default: from the config)")
    p.add_argument(
        "--timesteps",
        type=positive_int,
        help="timesteps per role per round (default: from the config); PPO trains whole rollouts of "
        "n_steps x n_envs steps, so at least one: results.json's timesteps_trained says how many it took",
    )
    p.add_argument("--n-envs", type=positive_int, help="parallel environments (default: from the config)")
    p.add_argument(
        "--vec-env",
        default="auto",
        choices=VEC_ENVS,
        help="how the envs run: auto (live envs one process each, replay in this one) | dummy | subproc | ray "
        "(Ray actors, --workers of them, each holding the pair once for its share of the envs; docs/scaling.md)",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed (distinct)")
    p.add_argument("--config", help=f"hyperparameter YAML (default: {CONFIG_DIR}/<env>.yaml)")
    p.add_argument("--exp", help="experiment name (run directory, W&B group; default: coadaptive | ppo)")
    p.add_argument("--runs-dir", default="runs", help="where run directories go (writable)")
    p.add_argument("--resume", help="a run directory to continue")
    p.add_argument("--wandb-project", default="specgym")
    p.add_argument("--wandb-entity")
    p.add_argument("--wandb-mode", choices=["online", "offline", "disabled"])
    p.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        help="torch threads (default 1: small MLP updates only lose to thread contention)",
    )
    p.add_argument("--device", default="auto", help="where the models run: auto (CUDA when present) | cpu | cuda[:N]")
    p.add_argument("--no-progress", action="store_true")
    add_worker_args(p, what="the pair for its share of --n-envs (with --vec-env ray)")
    return p


REPLAY_ONLY = {"credit": "token", "rate": "best_static"}  # DraftVerify kwargs that need a trace


def tree_shape(config: dict[str, Any], env_id: str) -> dict[str, int]:
    """DraftVerify's width and max_depth: the registered id's, then the config's."""
    import inspect

    import gymnasium as gym

    from envs.draft_verify import DraftVerifyEnv

    defaults = inspect.signature(DraftVerifyEnv).parameters
    shape = {key: gym.spec(env_id).kwargs.get(key, defaults[key].default) for key in ("width", "max_depth")}
    return {key: config["env_kwargs"].get(key, value) for key, value in shape.items()}


def env_kwargs_for(args: TrainArgs, config: dict[str, Any], env_id: str) -> dict[str, Any]:
    """DraftVerify kwargs: the registered id's tree shape, then the config's kwargs, then the CLI's."""
    kwargs = {
        **tree_shape(config, env_id),
        **config["env_kwargs"],
        "pair": args.pair,
        "backend": args.backend,
        "cost_model": args.cost_model,
        "cost_family": args.cost_family,
        "cost_features": cost_features(args),
        "device": args.device,
    }
    if args.backend == "replay":
        shape = (kwargs["width"], kwargs["max_depth"])
        kwargs["traces"] = args.traces or str(default_traces(args.pair, "train", *shape, args.prompts))
    else:  # the config's replay-only training aids read the trace; live training pays by cycle, target rate
        dropped = [key for key, value in REPLAY_ONLY.items() if kwargs.get(key) == value]
        for key in dropped:
            del kwargs[key]
        if dropped and env_id.endswith("Draft-v0"):
            print(
                f"live backend: training without {', '.join(dropped)} (they need a trace); the depth role's "
                "rewards then arrive at each cycle's end, so give it gamma 0.995 in --config"
            )
    kwargs.setdefault("split", "train")
    return kwargs


def cost_features(args: TrainArgs) -> str:
    """The observation layout: ``--cost-features``, auto being the profile's shape under a family."""
    if args.cost_features != "auto":
        return args.cost_features
    return "profile" if args.cost_family else "ratios"


def note_short_budget(config: dict[str, Any], name: str) -> None:
    """Say so when a stage's budget is below one PPO rollout: SB3 trains the whole rollout."""
    rollout = int(config.get("n_steps", 2048)) * int(config.get("n_envs", 1))  # 2048: SB3's default n_steps
    if int(config["n_timesteps"]) < rollout:
        print(
            f"{name}: {config['n_timesteps']} timesteps is less than one PPO rollout (n_steps x n_envs = "
            f"{rollout}); training {rollout} (results.json: timesteps_trained)"
        )


def vec_settings(args: TrainArgs) -> VecSettings:
    return VecSettings(kind=args.vec_env, workers=args.workers, address=args.ray_address, threads=args.threads)


def stage_seed(seed: int, round_: int) -> int:
    """PPO's seed for a round of run ``seed``: seed + round would give run 0's round 2 the seed of
    run 1's round 1; spaced by 1000, the runs' seeds never meet."""
    return 1000 * seed + round_


# a role whose action scales a rule (size_action / depth_action "expected") plays, until its first
# policy is trained, that rule: what the policy starts from, so round 1 of the other role learns to
# partner it (the env's default partner, static-4 verifying all it drafts, taught the depth role to
# stop at one level on a GPU shape where verifying past 8 tokens is dear)
RULE_PARTNERS = {"verify": ("size_action", "expected"), "draft": ("depth_action", "expected-depth")}


def role_env_id(role: str) -> str:
    """The registered id of a DraftVerify role (its config section)."""
    return f"SpecGym/DraftVerify-{role.capitalize()}-v0"


def first_partners(configs: dict[str, dict[str, Any]]) -> dict[str, str | None]:
    """Each role's partner before its own first policy exists, from the roles' training configs: the
    rule its action scales, else None (the env's default baseline)."""
    return {
        role: rule if configs[role]["env_kwargs"].get(key) == "expected" else None
        for role, (key, rule) in RULE_PARTNERS.items()
    }


def coadaptive(args: TrainArgs, seed: int, run_dir: Path, clock: RunClock) -> dict[str, Any]:
    base = load_config(args.config, ENVS[args.env], args.pair)
    rounds = args.rounds or int(base.get("rounds", 2))
    configs = {role: load_config(args.config, role_env_id(role), args.pair) for role in RULE_PARTNERS}
    partners = first_partners(configs)
    stages = []
    tracking = args.wandb_mode != "disabled"
    for r in range(1, rounds + 1):
        for role in args.roles:
            role_id = role_env_id(role)
            config = copy.deepcopy(configs[role])  # this stage's budget is set on it below
            if args.timesteps:
                config["n_timesteps"] = args.timesteps
            if args.n_envs:
                config["n_envs"] = args.n_envs
            kwargs = {**env_kwargs_for(args, config, role_id), "role": role}
            other = "verify" if role == "draft" else "draft"
            if partners[other]:
                kwargs["partner"] = partners[other]
            name = f"{role}_round{r}"
            note_short_budget(config, name)
            with clock.timing(name):
                # the role-specific registered ids share width and depth, so the saved policies fit each other
                path = train(
                    role_id,
                    kwargs,
                    config,
                    run_dir,
                    name=name,
                    seed=stage_seed(seed, r),
                    resume=bool(args.resume),
                    tracking=tracking,
                    progress=not args.no_progress,
                    vec=vec_settings(args),
                )
            partners[role] = str(path)
            stages.append(
                {
                    "round": r,
                    "role": role,
                    "policy": str(path),
                    "env_kwargs": kwargs,
                    "n_timesteps": config["n_timesteps"],
                    "timesteps_trained": trained_timesteps(path),
                    "seconds": clock.seconds(name),
                }
            )
    return {"stages": stages, "policies": {role: partners[role] for role in args.roles}}


def arbitration(args: TrainArgs, seed: int, run_dir: Path, clock: RunClock) -> dict[str, Any]:
    """One PPO run on Arbitration (its two choices are always valid; the mask is all-true)."""
    env_id = ENVS["arbitration"]
    config = load_config(args.config, env_id, args.pair)
    if args.timesteps:
        config["n_timesteps"] = args.timesteps
    if args.n_envs:
        config["n_envs"] = args.n_envs
    kwargs = {**config["env_kwargs"], "pair": args.pair, "device": args.device}
    if args.task:
        kwargs["task"] = args.task
    if args.n_items:
        kwargs["n_items"] = args.n_items
    kwargs.setdefault("split", "train")
    if args.backend == "replay":
        with clock.timing("record"):  # the training items' decision trees, once per data directory
            traces = args.traces or default_branches(
                args.pair,
                kwargs.get("task", "chain_sum"),
                kwargs["split"],
                kwargs.get("n_items", DEFAULT_ITEMS),
                kwargs.get("k", 4),
                kwargs.get("max_new_tokens", 64),
                args.device,
            )
        kwargs.update(backend="replay", traces=str(traces))
    else:
        kwargs.pop("reward", None)  # counterfactual credit reads the branch record
    note_short_budget(config, "arbiter")
    warm: dict[str, Any] = {}
    warm_start = None
    if config.get("bc_epochs") and kwargs.get("backend") == "replay":
        from envs.arbitration.env import load_branches
        from experiments.training.bc import clone_oracle

        def warm_start(model) -> None:
            warm.update(clone_oracle(model, load_branches(kwargs["traces"]), int(config["bc_epochs"]), seed=seed))

    with clock.timing("arbiter"):
        path = train(
            env_id,
            kwargs,
            config,
            run_dir,
            name="arbiter",
            seed=seed,
            resume=bool(args.resume),
            tracking=args.wandb_mode != "disabled",
            progress=not args.no_progress,
            warm_start=warm_start,
            vec=vec_settings(args),
        )
    stage = {
        **warm,
        "policy": str(path),
        "env_kwargs": kwargs,
        "n_timesteps": config["n_timesteps"],
        "timesteps_trained": trained_timesteps(path),
        "seconds": clock.seconds("arbiter"),
    }
    return {"stages": [stage], "policies": {"arbiter": str(path)}}


def claim_name(directory: Path, name: str, claim: Callable[[Path], object]) -> Path:
    """``directory/name``, or ``name-2``, ``name-3``, ... when a run or summary started in the same
    second (another process, or the same seed of another env) has it; ``claim(path)`` must create it
    atomically and raise FileExistsError when it is taken. The ``__``-separated fields that resuming
    parses (seed third) stay as they are."""
    directory.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = directory / (name if n == 1 else f"{name}-{n}")
        try:
            claim(path)  # atomic: of two processes asking for one name, one gets it
        except FileExistsError:
            continue
        return path
    raise SpecGymError(f"{directory} already holds 999 entries named {name}*; pass another --runs-dir or --exp")


def new_run_dir(runs_dir: Path, name: str) -> Path:
    """A new, empty run directory ``runs_dir/name`` (see :func:`claim_name`)."""
    return claim_name(runs_dir, name, Path.mkdir)


def write_summary(runs_dir: Path, name: str, data: dict[str, Any], table: str) -> Path:
    """The summary over several runs (``data`` and its ``table``) as ``runs_dir/NAME.json`` and
    ``NAME.md``, NAME being ``name`` or, when a summary written in the same second (another
    process) has it, ``name-2``, ...; each file written whole. Returns the .json."""

    def claim(base: Path) -> None:
        base.with_name(base.name + ".json").open("x").close()

    base = claim_name(runs_dir, name, claim)
    path = write_text_atomic(base.with_name(base.name + ".json"), json.dumps(data, indent=2))
    write_text_atomic(base.with_name(base.name + ".md"), table + "\n")
    return path


def run_one(args: TrainArgs, env: str, seed: int) -> dict[str, Any]:
    """Train, evaluate and report one (env, seed) run; returns its summary row."""
    args = replace(
        args,
        env=env,
        config=args.config or str(CONFIG_DIR / CONFIGS[env]),
        exp=args.exp or ("coadaptive" if env == "draft-verify" else "ppo"),
    )
    if args.resume:
        run_dir = Path(args.resume)
    else:
        run_dir = new_run_dir(Path(args.runs_dir), f"{env}__{args.exp}__{seed}__{time.strftime('%Y%m%d-%H%M%S')}")
        saved = {"argv": sys.argv[1:], "env": env, "seed": seed, "args": asdict(args)}
        (run_dir / "run.json").write_text(json.dumps(saved, indent=2))
    tracker = None
    if args.wandb_mode != "disabled":
        from experiments.training.tracking import finish_run, start_run

        try:
            tracker = start_run(
                project=args.wandb_project,
                entity=args.wandb_entity,
                mode=args.wandb_mode,
                name=run_dir.name,
                group=args.exp,
                config=asdict(args),
                run_dir=run_dir,
            )
        except BaseException:
            if not args.resume:
                shutil.rmtree(run_dir, ignore_errors=True)  # a W&B that would not start: nothing ran
            raise
    clock = RunClock(run_dir)  # seconds summed over the interrupted parts of a resumed run
    result: dict[str, Any] = {}
    with clock.timing("run"):
        try:
            with clock.timing("train"):
                result = (coadaptive if env == "draft-verify" else arbitration)(args, seed, run_dir, clock)
            result |= {"env": env, "pair": args.pair, "seed": seed, "train_seconds": clock.seconds("train")}
            (run_dir / "results.json").write_text(json.dumps(result, indent=2))  # evaluation reads the policies
            evaluation = evaluate_run(env, run_dir, args)
            result["plots"] = [str(p) for p in report_run(env, run_dir, evaluation, tracker)]
            if evaluation is not None:
                result["evaluation"] = str(run_dir / "evaluation.json")
                result["headline"] = headline(env, evaluation)
        except TrainingInterrupted as stop:
            print(f"interrupted: checkpoint {stop.checkpoint}; continue with --resume {run_dir}", file=sys.stderr)
            sys.exit(130)
        except (SpecGymError, OSError):  # bad input, or a file that could not be read or written
            if tracker is not None:
                finish_run(tracker)
                tracker = None
            if not result and not args.resume and not (run_dir / "checkpoints").exists():
                shutil.rmtree(run_dir, ignore_errors=True)  # bad input refused before training: nothing to resume
            raise
        finally:
            if tracker is not None:
                finish_run(tracker)
    result["total_seconds"] = clock.seconds("run")
    (run_dir / "results.json").write_text(json.dumps(result, indent=2))
    print(f"run directory: {run_dir}")
    return {
        "env": env,
        "seed": seed,
        "run_dir": str(run_dir),
        "headline": result.get("headline"),
        "seconds": result["total_seconds"],
    }


def print_table(rows: list[dict[str, Any]]) -> str:
    """The closing results table (also returned as markdown)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="SpecGym results (held-out)")
    for col in ("env", "seed", "learned", "baseline", "learned vs baseline", "of oracle", "minutes"):
        table.add_column(col)
    lines = ["| env | seed | learned | baseline | learned vs baseline | of oracle | minutes |", "|---" * 7 + "|"]
    for r in rows:
        h = r["headline"] or {}
        if r["env"] == "draft-verify" and h:
            cells = [
                f"{h['learned_tokens_per_s']:.1f} tok/s",
                f"static k={h['best_static_k']}: {h['best_static_tokens_per_s']:.1f} tok/s",
                f"{h['learned_over_best_static']:.3f}x",
                f"{h['learned_fraction_of_oracle']:.1%}",
            ]
        elif h:
            cells = [
                f"{h['learned_accuracy']:.1%} correct",
                f"target-only: {h['target_only_accuracy']:.1%}",
                f"{h['learned_minus_target_only']:+.1%}",
                "-",
            ]
        else:
            cells = ["-"] * 4
        row = [r["env"], str(r["seed"]), *cells, f"{r['seconds'] / 60:.1f}"]
        table.add_row(*row)
        lines.append("| " + " | ".join(row) + " |")
    Console(width=140).print(table)
    return "\n".join(lines)


def resolve_bundled(args: TrainArgs) -> TrainArgs:
    """``--traces``, ``--eval-traces`` and ``--cost-model`` ``bundled``: the pair's files shipped for
    SpecGym/DraftVerify-v1 (envs/pairs/replay_assets.py), at the tree shape the config trains."""
    from envs.pairs.replay_assets import BUNDLED_NAME, bundled_profile, bundled_trace

    if BUNDLED_NAME not in (args.traces, args.eval_traces, args.cost_model):
        return args
    role_id = config_ids("draft-verify", args)[-1]
    width = tree_shape(load_config(args.config or CONFIG_DIR / CONFIGS["draft-verify"], role_id, args.pair), role_id)
    given = {"traces": ("train", args.traces), "eval_traces": ("heldout", args.eval_traces)}
    paths = {
        key: str(bundled_trace(args.pair, split, width["width"]))
        for key, (split, v) in given.items()
        if v == BUNDLED_NAME
    }
    if args.cost_model == BUNDLED_NAME:
        paths["cost_model"] = str(bundled_profile(args.pair))
    return replace(args, **paths)


def resolve_eval_items(args: TrainArgs, envs: list[str]) -> TrainArgs:
    """``--eval-items`` unset: the Arbitration config's ``eval_items`` for the pair (its ``@pair`` layer
    can say how many held-out items its bundled record holds, or what a recording can afford)."""
    if args.eval_items is not None or "arbitration" not in envs:
        return args
    config = load_config(args.config or CONFIG_DIR / CONFIGS["arbitration"], ENVS["arbitration"], args.pair)
    return replace(args, eval_items=int(config.get("eval_items", DEFAULT_EVAL_ITEMS)))


def check_trace_splits(args: TrainArgs) -> None:
    """Training on a held-out trace, or scoring on the training one, or on another pair's trace, is
    refused before any work (and in the CLI's words: the env would say ``pair=``)."""
    from envs.specdec.trace import Trace
    from experiments.runs import check_trace_pair

    for flag, path, split in (("--traces", args.traces, "train"), ("--eval-traces", args.eval_traces, "heldout")):
        meta = Trace.load_meta(path) if path else {}
        if path:
            check_trace_pair(path, meta, args.pair)
        held = meta.get("split", split)
        if held != split:
            raise SpecGymError(
                f"{flag} {path} holds the {held!r} split, {flag} wants {split!r}; record one with "
                f"python -m experiments.record_traces --pair {args.pair} --split {split} --out FILE.npz"
            )


def config_ids(env: str, args: TrainArgs) -> list[str]:
    """The env ids whose settings a run of ``env`` reads from its config."""
    if env == "arbitration":
        return [ENVS[env]]
    return [ENVS[env], *(role_env_id(role) for role in args.roles)]


def refuse_bad_input(args: TrainArgs, envs: list[str]) -> None:
    """Every check that needs no training, before any run directory or W&B run exists: bad input
    ends here in one line, not after (or in the middle of) the work."""
    repeated = sorted({seed for seed in args.seeds if args.seeds.count(seed) > 1})
    if repeated:
        raise SpecGymError(
            f"--seeds repeats {' '.join(map(str, repeated))}: one run per seed, and a summary over a seed run "
            "twice has no spread; pass distinct seeds (e.g. --seeds 0 1 2)"
        )
    check_validation_items(args.validation_items)
    if args.eval_items is not None and (args.eval_items < 0 or args.eval_items == 1):
        raise SpecGymError(
            f"--eval-items must be 0 (no evaluation) or >= 2 (a paired interval needs two items), got {args.eval_items}"
        )
    check_device(args.device)
    if args.cost_family is not None:
        check_family_name(args.cost_family)
        if "draft-verify" not in envs:
            raise SpecGymError("--cost-family draws DraftVerify's cost model; pass --env draft-verify (or all)")
        if args.cost_model == "measured":
            raise SpecGymError(
                "--cost-family draws predictive cost models; pass --cost-model auto, analytic or a .json"
            )
    check_split_source(args.prompts)
    if args.prompts:
        load_prompts(args.prompts, 1)  # an unknown mix or task, refused before any run
    if args.prompts and args.traces and args.eval_traces:
        raise SpecGymError(
            "--prompts chooses the traces recorded on first use; with --traces and --eval-traces given, drop it"
        )
    if args.vec_env == "ray" and args.workers is None:
        raise SpecGymError("--vec-env ray needs --workers N (the Ray actors the envs are shared among)")
    if args.workers is not None and args.vec_env != "ray":
        raise SpecGymError("--workers in train sets the Ray actors of --vec-env ray; add --vec-env ray")
    if args.vec_env not in VEC_ENVS:
        raise SpecGymError(f"unknown --vec-env {args.vec_env!r}; choose {', '.join(VEC_ENVS)}")
    check_workers(args.workers, args.ray_address, args.device)
    if args.resume:
        check_writable(args.resume, "run directory", "copy the run somewhere writable and --resume the copy")
    else:
        check_writable(args.runs_dir, "--runs-dir", "pass --runs-dir DIR in a writable place")
    if args.wandb_mode != "disabled":
        check_wandb_mode(args.wandb_mode)
    configs = {env: args.config or str(CONFIG_DIR / CONFIGS[env]) for env in envs}
    loaded = {env_id: load_config(configs[env], env_id, args.pair) for env in envs for env_id in config_ids(env, args)}
    if "draft-verify" in envs and args.backend == "replay":
        role_id = config_ids("draft-verify", args)[-1]  # every role id shares the tree shape
        shape = tree_shape(loaded[role_id], role_id)
        needed = [split for split, given in (("train", args.traces), ("heldout", args.eval_traces)) if not given]
        if any(not default_trace_path(args.pair, split, **shape, prompts=args.prompts).is_file() for split in needed):
            check_data_dir_writable()  # recorded on first use, the held-out one after training


def explicit_args(argv: list[str] | None) -> dict[str, Any]:
    """The options ``argv`` sets itself (no defaults), to lay over a resumed run's saved ones."""
    parser = build_parser()
    for action in parser._actions:  # argparse has no public switch; set_defaults would store the marker itself
        action.default = argparse.SUPPRESS
    return vars(parser.parse_args(argv))


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = TrainArgs.from_dict(vars(build_parser().parse_args(argv)))
    # Ctrl-C and kill (SIGTERM) both stop at a checkpoint, also in a background job, where SIGINT
    # starts out ignored and Python would install no handler of its own
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if args.resume:
        run_json = Path(args.resume) / "run.json"
        if not run_json.is_file():
            raise SpecGymError(f"{args.resume} is not a run directory (no run.json); pass one from --runs-dir")
        saved = json.loads(run_json.read_text())
        # the run's own settings, then whatever this command line sets explicitly (e.g. --timesteps)
        seed = saved["seed"] if "seed" in saved else int(Path(args.resume).name.split("__")[2])
        args = TrainArgs.from_dict({**saved["args"], **explicit_args(argv), "resume": args.resume, "seeds": [seed]})
    torch.set_num_threads(args.threads)  # after a resume restored the run's own
    if args.env != "all" and args.env not in ENVS:
        raise SpecGymError(f"unknown env {args.env!r}; choose all or one of {', '.join(ENVS)}")
    envs = list(ENVS) if args.env == "all" else [args.env]
    check_pair_name(args.pair)  # before calibrating a cost model for it
    args = resolve_bundled(args)
    args = resolve_eval_items(args, envs)
    check_trace_splits(args)
    refuse_bad_input(args, envs)
    if args.cost_model == "auto" and "draft-verify" in envs:
        args = replace(args, cost_model=default_cost_model(args.pair, args.device))
    rows = [run_one(args, env, seed) for env in envs for seed in args.seeds]
    table = print_table(rows)
    if len(rows) > 1:
        name = f"summary__{args.exp or 'default'}__{time.strftime('%Y%m%d-%H%M%S')}"
        data = {"runs": rows, "summary": summarise(rows)}
        print(f"summary: {write_summary(Path(args.runs_dir), name, data, table)}")
    return rows


if __name__ == "__main__":
    run_main(main)
