"""Evaluate a trained Arbitration policy against every baseline on held-out items, by replay.

    python -m experiments.evaluate --env arbitration --policy RUN_DIR_OR_ZIP --pair gsm \\
        --task chain_sum|FILE.jsonl --n-items 1000 [--traces HELDOUT.npz] --out FILE.json

Every policy walks the same held-out items' recorded decision trees (seeds no recipe, training or
tuning used; recorded first, into the data directory, when ``--traces`` is not given): the
figures are exactly those live decoding gives for the same choices. Per policy: ``accuracy``
(share of items with full marks from the task scorer) with a 95% Wilson interval, ``mean_score``
(the scorer's value, the env's reward; reasoning-gym gives partial credit to near misses),
``mean_accepted_length`` (tokens per target forward), ``tokens_per_s`` (the recorded wall clock of
drafting and verification on the recording device), ``draft_kept_fraction`` (share of mismatches
where the draft's token was kept), ``oracle_agreement`` (share of its decisions equal to the
lookahead oracle's) and ``oracle_agreement_decisive`` (the same over decisions where the two
choices' lookahead outcomes differ), and ``diff_vs_target_only`` (its per-item correctness minus
target-only's: mean and 95% interval, normal approximation of the paired differences).

The rule baselines (``target-prob``, ``draft-margin``, FLy-style ``entropy-gate`` and a logistic
``judge`` fitted to the lookahead oracle's choices on training items) have their thresholds tuned
on the validation split (``--validation-items 0``: on the training record instead, which the
default experiment does to record no third split), never on held-out items; ``best_rule`` is the
one most accurate there.
``oracle`` (lookahead) and ``exact-oracle`` (the best reachable answer over the whole tree) show
the headroom; ``headroom_captured`` is the learned policy's gain over target-only divided by the
exact oracle's, over items whose tree is complete.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from rich.table import Table
from tqdm.auto import tqdm

from agents.arbiters import Arbiter, ItemResult, decisive_on_target_path, fit_judge, make_arbiter, run_replay_item
from envs.arbitration import ArbitrationEnv
from envs.pairs.build import BUNDLED, data_dir
from envs.pairs.replay_assets import bundled_branch_items
from envs.specdec import SpecGymError
from envs.specdec.records import mean_accepted_length
from experiments import cli
from experiments.artifacts import default_branches, replay_arbitration_env
from experiments.cli import CommandParser, write_json
from experiments.workers import WorkerArgs, add_worker_args, check_workers

console = cli.console()
# threshold grids the rule baselines are tuned over (on the validation split)
RULE_GRIDS = {
    "target-prob": [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6],
    "draft-margin": [-0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5],
    "entropy-gate": [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6],
    "judge": [0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95],
}
# items of the training record the judge is fitted on, and of the validation split the rules are
# tuned on, where the pair has no bundled branch record (with one: its items, tuned on the training record)
TRAIN_ITEMS = 1000
VALIDATION_ITEMS = 500


def key(name: str) -> str:
    return name.replace("-", "_")


def learned_arbiter(path: str) -> Arbiter:
    """A run directory (its trained arbiter), a policy .zip, or any arbiter name (``agents.arbiters``)."""
    p = Path(path)
    if p.is_dir():
        results = p / "results.json"
        if not results.is_file():
            raise SpecGymError(f"{p} has no results.json; pass a finished run directory or a policy .zip")
        policy = json.loads(results.read_text()).get("policies", {}).get("arbiter")
        if not policy:
            raise SpecGymError(f"{results} holds no arbitration policy; pass a run of --env arbitration")
        p = Path(policy)
    return make_arbiter(str(p))


def wilson(successes: float, n: int, z: float = 1.96) -> list[float]:
    """95% Wilson score interval of a proportion."""
    if n == 0:
        return [0.0, 1.0]
    phat = successes / n
    centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def paired_diff(a: list[float], b: list[float], z: float = 1.96) -> dict:
    """Mean of a - b over the same items, with a normal-approximation 95% interval."""
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    mean = statistics.fmean(diffs)
    half = z * statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else float("inf")
    return {
        "mean": mean,
        "ci95": [mean - half, mean + half],
        "n_items": len(diffs),
        "items_only_learned_correct": sum(d > 0 for d in diffs),
        "items_only_target_only_correct": sum(d < 0 for d in diffs),
    }


def summarise_items(results: list[ItemResult]) -> dict:
    n, correct = len(results), sum(r.correct for r in results)
    mismatches = sum(r.mismatches for r in results)
    decisive = sum(r.decisive for r in results)
    return {
        "accuracy": correct / n,
        "accuracy_ci95": wilson(correct, n),
        "mean_score": sum(r.score for r in results) / n,
        "n_items": n,
        "mean_accepted_length": mean_accepted_length(sum(r.tokens for r in results), sum(r.cycles for r in results)),
        "tokens_per_s": sum(r.tokens for r in results) / sum(r.time for r in results),
        "draft_kept_fraction": sum(r.draft_kept for r in results) / mismatches if mismatches else 0.0,
        "mismatches_per_item": mismatches / n,
        "oracle_agreement": sum(r.agree for r in results) / mismatches if mismatches else 1.0,
        "oracle_agreement_decisive": sum(r.agree_decisive for r in results) / decisive if decisive else 1.0,
    }


def replay_env(
    pair: str,
    task: str,
    split: str,
    n_items: int,
    k: int,
    max_new: int,
    device: str,
    traces: str | None = None,
    workers: WorkerArgs | None = None,
) -> ArbitrationEnv:
    """A replay ArbitrationEnv over ``split``'s first ``n_items`` (the record made on first use,
    over ``workers``' Ray actors when given)."""
    pool = workers or WorkerArgs()
    path = traces or default_branches(pair, task, split, n_items, k, max_new, device, pool.workers, pool.ray_address)
    return replay_arbitration_env(pair, task, split, n_items, k, max_new, path, device)


def run_all(env: ArbitrationEnv, arbiters: dict[str, Arbiter], desc: str) -> dict[str, list[ItemResult]]:
    items = range(len(env.items))
    return {
        name: [run_replay_item(env, a, i) for i in items]
        for name, a in tqdm(arbiters.items(), desc=desc, unit="policy", leave=False)
    }


def tune_rules(tuning: ArbitrationEnv, judge: Path) -> dict[str, dict]:
    """Each rule family's threshold most accurate on the ``tuning`` items (validation or training;
    ties: the lower draft-kept share, i.e. the one nearer lossless SpD)."""
    tuned = {}
    for family, grid in RULE_GRIDS.items():
        names = [f"judge:{judge}@{t:g}" if family == "judge" else f"{family}-{t:g}" for t in grid]
        arbiters = {n: make_arbiter(n) for n in names}
        rows = {n: summarise_items(r) for n, r in run_all(tuning, arbiters, f"tuning {family}").items()}
        spec = max(rows, key=lambda n: (rows[n]["accuracy"], -rows[n]["draft_kept_fraction"]))
        tuned[family] = {
            "name": arbiters[spec].name,
            "spec": spec,
            "tuning_accuracy": rows[spec]["accuracy"],
            "tuning_curve": {arbiters[n].name: rows[n]["accuracy"] for n in names},  # every threshold tried
        }
    return tuned


def build_parser() -> argparse.ArgumentParser:
    p = CommandParser(
        prog="python -m experiments.evaluate --env arbitration",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--env", default="arbitration", choices=["arbitration"])
    p.add_argument("--policy", required=True, help="a run directory of --env arbitration, or a policy .zip")
    p.add_argument("--pair", default="gsm", help="registered pair name (default: gsm)")
    p.add_argument("--task", default="chain_sum", help="reasoning-gym task or GSM8K-format .jsonl")
    p.add_argument("--n-items", type=int, default=1000, help="held-out items (default: 1000)")
    p.add_argument("--traces", help="the held-out branch record (default: recorded into the data directory)")
    p.add_argument(
        "--validation-items",
        type=int,
        help=f"validation items the rules are tuned on; 0: tune them on the training record (default: "
        f"{VALIDATION_ITEMS}, or 0 where the pair's training record is bundled)",
    )
    p.add_argument(
        "--train-items",
        type=int,
        help=f"training items the judge is fitted on (default: {TRAIN_ITEMS}, or the bundled training record's)",
    )
    p.add_argument("--k", type=int, default=4, help="drafted tokens per cycle")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0, help="seed of the random baseline")
    p.add_argument("--out", help="write the results JSON here")
    add_worker_args(p, "the pair (recording the items' decision trees)")
    return p


@dataclass
class ArbitrationEvalSettings(WorkerArgs):
    """``python -m experiments.evaluate --env arbitration``'s options."""

    policy: str
    pair: str = "gsm"
    task: str = "chain_sum"
    n_items: int = 1000
    traces: str | None = None
    validation_items: int | None = None  # None: resolve_split_items
    train_items: int | None = None
    k: int = 4
    max_new_tokens: int = 64
    device: str = "auto"
    seed: int = 0
    out: str | None = None


def main(argv: list[str] | None = None) -> dict:
    options = vars(build_parser().parse_args(argv))
    options.pop("env")
    return evaluate_arbitration(ArbitrationEvalSettings(**options))


def judge_path(pair: str, record: Path) -> Path:
    """Where the judge fitted on ``record`` is kept: beside it, or for a bundled record in the data
    directory's traces (named as a recorded one would be)."""
    if record.resolve().is_relative_to(BUNDLED.resolve()):
        return data_dir() / "traces" / f"{pair}__{record.stem}.judge.json"
    return record.with_suffix(".judge.json")


def resolve_split_items(args: ArbitrationEvalSettings) -> None:
    """Unset ``train_items`` / ``validation_items``: a bundled training record's items and rules tuned
    on it (what the default run does, so nothing is recorded), else 1,000 and 500."""
    bundled = bundled_branch_items(args.pair, args.task, "train", args.k, args.max_new_tokens)
    if args.train_items is None:
        args.train_items = bundled or TRAIN_ITEMS
    if args.validation_items is None:
        args.validation_items = 0 if bundled else VALIDATION_ITEMS


def check_validation_items(n: int) -> None:
    if not isinstance(n, int) or n < 0:
        raise SpecGymError(f"--validation-items must be >= 1, or 0 to tune the rules on the training record, got {n}")


def evaluate_arbitration(args: ArbitrationEvalSettings) -> dict:
    """The learned arbiter against every baseline on held-out items; the results JSON."""
    if args.n_items < 2:
        raise SpecGymError(f"--n-items must be >= 2 (a paired interval needs two items), got {args.n_items}")
    resolve_split_items(args)
    if args.train_items < 1:
        raise SpecGymError(f"--train-items must be >= 1, got {args.train_items}")
    check_validation_items(args.validation_items)
    check_workers(args.workers, args.ray_address, args.device)
    learned = learned_arbiter(args.policy)
    common = (args.pair, args.task)
    shape = (args.k, args.max_new_tokens, args.device)
    env = replay_env(*common, "heldout", args.n_items, *shape, traces=args.traces, workers=args)
    train = replay_env(*common, "train", args.train_items, *shape, workers=args)
    tuning_split = "validation" if args.validation_items else "train"
    tuning = (
        replay_env(*common, "validation", args.validation_items, *shape, workers=args)
        if args.validation_items
        else train
    )
    # the judge is a function of the training record alone: fitted (in about a second) and kept beside
    # it, or in the data directory for a record bundled with the repository (never written into it)
    judge = fit_judge(train.tree, judge_path(args.pair, Path(train._kwargs["traces"])))
    tuned = tune_rules(tuning, judge)
    best_family = max(tuned, key=lambda f: tuned[f]["tuning_accuracy"])
    arbiters: dict[str, Arbiter] = {"learned": learned}
    for name in ("target-only", "always-draft", "random", "oracle", "exact-oracle"):
        arbiters[key(name)] = make_arbiter(name, seed=args.seed)
    for family, row in tuned.items():
        arbiters[key(family)] = make_arbiter(row["spec"])
    runs = run_all(env, arbiters, f"{len(env.items)} held-out items")
    policies = {name: summarise_items(results) for name, results in runs.items()}
    correct = {name: [float(r.correct) for r in results] for name, results in runs.items()}
    for name, row in policies.items():
        row["diff_vs_target_only"] = paired_diff(correct[name], correct["target_only"])
    for family, row in tuned.items():
        policies[key(family)].update(
            rule=row["name"], tuning_accuracy=row["tuning_accuracy"], tuning_curve=row["tuning_curve"]
        )
    complete = [i for i in range(len(env.items)) if env.tree.item_complete[i]]
    gain = {name: statistics.fmean(correct[name][i] - correct["target_only"][i] for i in complete) for name in correct}
    headroom = gain["exact_oracle"]
    out = {
        "benchmark": "evaluate-arbitration",
        "env": "arbitration",
        "pair": args.pair,
        "task": args.task,
        "device": env.tree.meta.get("device"),
        "n_items": len(env.items),
        "k": args.k,
        "max_new_tokens": args.max_new_tokens,
        "policy": args.policy,
        "traces": str(env._kwargs["traces"]),
        # decisions the walks took from the record (a branch it lacks is decoded on demand), and those
        # that kept the target's token as this machine decodes the item apart from the record
        "served_from_record": 1.0 - env.decoded_steps / max(sum(r.mismatches for rs in runs.values() for r in rs), 1),
        "unreproduced_decisions": env.unreproduced_steps,
        "paired_diff_vs_target_only": paired_diff(correct["learned"], correct["target_only"]),
        "best_rule": {
            "policy": key(best_family),
            **{k: v for k, v in tuned[best_family].items() if k != "tuning_curve"},
        },
        "rules_tuned_on": {"split": tuning_split, "n_items": len(tuning.items)},
        "judge_fitted_on": {"split": "train", "n_items": args.train_items, "file": str(judge)},
        "decisive_on_target_only_path": {
            "train": decisive_on_target_path(train.tree, len(train.items)),
            "heldout": decisive_on_target_path(env.tree, len(env.items)),
        },
        "headroom": {
            "exact_oracle_minus_target_only": headroom,
            "lookahead_oracle_minus_target_only": gain["oracle"],
            "learned_minus_target_only": gain["learned"],
            "headroom_captured": gain["learned"] / headroom if headroom > 0 else math.nan,
            "complete_items": len(complete),
        },
        "policies": policies,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    table = Table(title=f"Arbitration: {args.pair}, {args.task}, {len(env.items)} held-out items (replay)")
    for col in ("policy", "accuracy", "95% CI", "vs target-only", "accepted length", "draft kept", "oracle agree"):
        table.add_column(col)
    for name, row in sorted(policies.items(), key=lambda kv: -kv[1]["accuracy"]):
        lo, hi = row["accuracy_ci95"]
        d = row["diff_vs_target_only"]
        table.add_row(
            f"{name} ({row['rule']})" if "rule" in row else name,
            f"{row['accuracy']:.3f}",
            f"[{lo:.3f}, {hi:.3f}]",
            f"{d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]",
            f"{row['mean_accepted_length']:.2f}",
            f"{row['draft_kept_fraction']:.2f}",
            f"{row['oracle_agreement']:.3f}",
        )
    console.print(table)
    d = out["paired_diff_vs_target_only"]
    console.print(f"learned - target-only: {d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]")
    write_json(args.out, out)
    return out
