"""Evaluate a trained Arbitration policy against every baseline on held-out items.

    python -m experiments.evaluate --env arbitration --policy RUN_DIR_OR_ZIP --pair gsm \\
        --task chain_sum|FILE.jsonl --n-items 300 --out FILE.json

Every policy decodes the same held-out items (seeds no training used), interleaved item by
item in a rotating order so the machine's drift hits all of them alike. Per policy:
``accuracy`` (share of items with full marks from the task scorer) with a 95% Wilson interval,
``mean_score`` (the scorer's value, the env's reward; reasoning-gym gives partial credit to near
misses), ``mean_accepted_length`` (tokens per target forward),
``tokens_per_s`` (wall clock of drafting and verification), ``draft_kept_fraction`` (share of
mismatches where the draft's token was kept). ``paired_diff_vs_target_only``: the learned
policy's per-item correctness minus target-only's on the same items, mean and 95% interval
(normal approximation of the paired differences); every policy row carries the same
``diff_vs_target_only``. The oracle (one-step lookahead) runs on the
first ``--oracle-items`` items only and reports target-only's accuracy on that subset beside it.
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

from agents.arbiters import Arbiter, ItemResult, make_arbiter, run_item
from envs.arbitration import ArbitrationEnv
from envs.specdec import SpecGymError
from envs.specdec.cost import device_name
from envs.specdec.records import mean_accepted_length
from experiments import cli
from experiments.cli import CommandParser, check_device, write_json

console = cli.console()
RULES = ("target-prob-0.1", "target-prob-0.3", "draft-margin-0", "draft-margin-0.3")


def key(name: str) -> str:
    return name.replace("-", "_")


def learned_arbiter(path: str) -> Arbiter:
    """A run directory (its trained arbiter) or a policy .zip."""
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
    return {
        "accuracy": correct / n,
        "accuracy_ci95": wilson(correct, n),
        "mean_score": sum(r.score for r in results) / n,
        "n_items": n,
        "mean_accepted_length": mean_accepted_length(sum(r.tokens for r in results), sum(r.cycles for r in results)),
        "tokens_per_s": sum(r.tokens for r in results) / sum(r.time for r in results),
        "draft_kept_fraction": sum(r.draft_kept for r in results) / mismatches if mismatches else 0.0,
        "mismatches_per_item": mismatches / n,
    }


def run_interleaved(env: ArbitrationEnv, arbiters: dict[str, Arbiter], items: range) -> dict[str, list[ItemResult]]:
    """Every arbiter on every item; the order of arbiters rotates from item to item."""
    names = list(arbiters)
    out: dict[str, list[ItemResult]] = {n: [] for n in names}
    for i in tqdm(items, desc=f"items x {len(names)} policies", unit="item"):
        for j in range(len(names)):
            name = names[(i + j) % len(names)]
            out[name].append(run_item(env, arbiters[name], i))
    return out


def build_parser() -> argparse.ArgumentParser:
    p = CommandParser(
        prog="python -m experiments.evaluate --env arbitration",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--env", default="arbitration", choices=["arbitration"])
    p.add_argument("--policy", required=True, help="a run directory of --env arbitration, or a policy .zip")
    p.add_argument("--pair", default="gsm", help="registered pair name (default: gsm)")
    p.add_argument("--task", default="chain_sum", help="reasoning-gym task name or GSM8K-format .jsonl")
    p.add_argument("--n-items", type=int, default=300)
    p.add_argument("--oracle-items", type=int, default=100, help="items for the (slow) oracle; 0 skips it")
    p.add_argument("--k", type=int, default=4, help="drafted tokens per cycle")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default=None)
    p.add_argument("--seed", type=int, default=0, help="seed of the random baseline")
    p.add_argument("--out", help="write the results JSON here")
    return p


@dataclass
class ArbitrationEvalSettings:
    """``python -m experiments.evaluate --env arbitration``'s options."""

    policy: str
    pair: str = "gsm"
    task: str = "chain_sum"
    n_items: int = 300
    oracle_items: int = 100
    k: int = 4
    max_new_tokens: int = 64
    device: str = "auto"
    dtype: str | None = None
    seed: int = 0
    out: str | None = None


def main(argv: list[str] | None = None) -> dict:
    options = vars(build_parser().parse_args(argv))
    options.pop("env")
    return evaluate_arbitration(ArbitrationEvalSettings(**options))


def evaluate_arbitration(args: ArbitrationEvalSettings) -> dict:
    """The learned arbiter against every baseline on held-out items; the results JSON."""
    if args.n_items < 2:
        raise SpecGymError(f"--n-items must be >= 2 (a paired interval needs two items), got {args.n_items}")
    check_device(args.device)
    env = ArbitrationEnv(
        pair=args.pair,
        task=args.task,
        n_items=args.n_items,
        split="heldout",
        k=args.k,
        max_new_tokens=args.max_new_tokens,
        device=args.device,
        dtype=args.dtype,
    )
    arbiters = {"learned": learned_arbiter(args.policy)}
    for name in ("target-only", "always-draft", "random", *RULES):
        arbiters[key(name)] = make_arbiter(name, seed=args.seed)
    runs = run_interleaved(env, arbiters, range(len(env.items)))
    policies = {name: summarise_items(results) for name, results in runs.items()}
    correct = {name: [float(r.correct) for r in results] for name, results in runs.items()}
    for name, row in policies.items():
        row["diff_vs_target_only"] = paired_diff(correct[name], correct["target_only"])
    if args.oracle_items > 0:
        subset = range(min(args.oracle_items, len(env.items)))
        oracle = [run_item(env, make_arbiter("oracle"), i) for i in tqdm(subset, desc="oracle", unit="item")]
        oracle_correct = [float(r.correct) for r in oracle]
        policies["oracle"] = summarise_items(oracle) | {
            "diff_vs_target_only": paired_diff(oracle_correct, [correct["target_only"][i] for i in subset]),
            "target_only_accuracy_same_items": statistics.fmean(correct["target_only"][i] for i in subset),
            "learned_accuracy_same_items": statistics.fmean(correct["learned"][i] for i in subset),
        }
    out = {
        "benchmark": "evaluate-arbitration",
        "env": "arbitration",
        "pair": args.pair,
        "task": args.task,
        "device": device_name(env.pair.device),
        "n_items": len(env.items),
        "k": args.k,
        "max_new_tokens": args.max_new_tokens,
        "policy": args.policy,
        "paired_diff_vs_target_only": paired_diff(correct["learned"], correct["target_only"]),
        "policies": policies,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    table = Table(title=f"Arbitration: {args.pair}, {args.task}, {len(env.items)} held-out items")
    for col in ("policy", "accuracy", "95% CI", "accepted length", "tokens/s", "draft kept"):
        table.add_column(col)
    for name, row in sorted(policies.items(), key=lambda kv: -kv[1]["accuracy"]):
        lo, hi = row["accuracy_ci95"]
        table.add_row(
            f"{name} (n={row['n_items']})" if name == "oracle" else name,
            f"{row['accuracy']:.3f}",
            f"[{lo:.3f}, {hi:.3f}]",
            f"{row['mean_accepted_length']:.2f}",
            f"{row['tokens_per_s']:.0f}",
            f"{row['draft_kept_fraction']:.2f}",
        )
    console.print(table)
    d = out["paired_diff_vs_target_only"]
    console.print(f"learned - target-only: {d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]")
    write_json(args.out, out)
    return out
