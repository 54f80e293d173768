"""Ablation of Arbitration's training aids on the validation split (never the held-out one).

    python -m experiments.arbitration_ablation --pair gsm --seeds 0 1 2 --timesteps 100000 --out FILE.json

Every variant trains MaskablePPO with ``experiments/configs/arbitration.yaml``'s settings on the
training items' branch record (replay), then walks the validation items' record:

- ``plain``: the reward is the final answer's score (``reward="correctness"``);
- ``counterfactual``: each decision earns its choice's lookahead outcome minus keeping the target's
  token (``reward="counterfactual"``; same optimum, denser signal);
- ``bc``: ``plain`` after a warm start by behaviour cloning of the lookahead oracle's choices on
  the training record (``bc_epochs``);
- ``bc_counterfactual``: both.

Per variant and seed: validation accuracy, the paired gain over target-only, the draft-kept share
and the oracle agreement; per variant their mean and sd over seeds. ``winner``: the best mean
validation accuracy; the default config should use it.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from agents.arbiters import make_arbiter
from envs.specdec.errors import SpecGymError
from experiments.artifacts import default_branches
from experiments.cli import CommandParser, positive_int, run_main, write_json
from experiments.evaluate_arbitration import paired_diff, replay_env, run_all, summarise_items
from experiments.training.config import CONFIG_DIR, load_config
from experiments.training.ppo import train

VARIANTS = {
    "plain": ({"reward": "correctness"}, 0),
    "counterfactual": ({"reward": "counterfactual"}, 0),
    "bc": ({"reward": "correctness"}, 20),
    "bc_counterfactual": ({"reward": "counterfactual"}, 20),
}
ENV_ID = "SpecGym/Arbitration-v0"


def train_variant(name: str, args: argparse.Namespace, traces: Path, seed: int, out_dir: Path) -> Path:
    from envs.arbitration.env import load_branches
    from experiments.training.bc import clone_oracle

    env_kwargs, bc_epochs = VARIANTS[name]
    config = load_config(str(CONFIG_DIR / "arbitration.yaml"), ENV_ID, args.pair)
    config["n_timesteps"] = args.timesteps
    config.pop("bc_epochs", None)
    kwargs = {
        **config["env_kwargs"],
        **env_kwargs,
        "pair": args.pair,
        "task": args.task,
        "n_items": args.train_items,
        "split": "train",
        "backend": "replay",
        "traces": str(traces),
    }

    def warm(model) -> None:
        clone_oracle(model, load_branches(str(traces)), bc_epochs, seed=seed)

    return train(
        ENV_ID,
        kwargs,
        config,
        out_dir / f"{name}_{seed}",
        name="arbiter",
        seed=seed,
        progress=False,
        warm_start=warm if bc_epochs else None,
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    if len(set(args.seeds)) != len(args.seeds):
        raise SpecGymError("--seeds repeats a seed; pass distinct seeds")
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        raise SpecGymError(f"unknown variant {unknown[0]!r}; choose from {', '.join(VARIANTS)}")
    traces = default_branches(args.pair, args.task, "train", args.train_items)
    validation = replay_env(args.pair, args.task, "validation", args.validation_items, 4, 64, "auto")
    target_only = run_all(validation, {"t": make_arbiter("target-only")}, "target-only")["t"]
    rows: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.variants:
            for seed in args.seeds:
                policy = train_variant(name, args, traces, seed, Path(tmp))
                results = run_all(validation, {"p": make_arbiter(str(policy))}, name)["p"]
                row = summarise_items(results)
                diff = paired_diff([float(r.correct) for r in results], [float(r.correct) for r in target_only])
                rows.setdefault(name, []).append({"seed": seed, **row, "diff_vs_target_only": diff})
                print(f"{name} seed {seed}: validation accuracy {row['accuracy']:.3f} ({diff['mean']:+.3f})")
    summary = {}
    for name, runs in rows.items():
        accs = [r["accuracy"] for r in runs]
        gains = [r["diff_vs_target_only"]["mean"] for r in runs]
        summary[name] = {
            "accuracy_mean": statistics.fmean(accs),
            "accuracy_sd": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "gain_mean": statistics.fmean(gains),
            "draft_kept_mean": statistics.fmean(r["draft_kept_fraction"] for r in runs),
            "oracle_agreement_mean": statistics.fmean(r["oracle_agreement"] for r in runs),
        }
    return {
        "benchmark": "arbitration-ablation",
        "pair": args.pair,
        "task": args.task,
        "split": "validation",
        "validation_items": args.validation_items,
        "train_items": args.train_items,
        "timesteps": args.timesteps,
        "seeds": args.seeds,
        "target_only_accuracy": summarise_items(target_only)["accuracy"],
        "variants": summary,
        "runs": rows,
        "winner": max(summary, key=lambda n: summary[n]["accuracy_mean"]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def build_parser() -> argparse.ArgumentParser:
    p = CommandParser(
        prog="python -m experiments.arbitration_ablation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--pair", default="gsm")
    p.add_argument("--task", default="chain_sum")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--timesteps", type=positive_int, default=100_000)
    p.add_argument("--train-items", type=positive_int, default=1000)
    p.add_argument("--validation-items", type=positive_int, default=500)
    p.add_argument("--out")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    out = run(args)
    for name, row in out["variants"].items():
        acc = f"{row['accuracy_mean']:.3f} +- {row['accuracy_sd']:.3f}"
        print(f"{name:18s} accuracy {acc}  gain {row['gain_mean']:+.3f}")
    print(f"winner: {out['winner']}")
    write_json(args.out, out)
    return out


if __name__ == "__main__":
    run_main(main)
