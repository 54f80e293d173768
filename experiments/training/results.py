"""After training: evaluate on held-out data, write results.md and PNG plots, log them to W&B,
and summarise several runs (seeds) with mean and spread."""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from experiments import plots

N_TRACE_PROMPTS = {"train": 48, "heldout": 24}
TRACE_TOKENS = 64


def trace_source(pair: str) -> str | None:
    """Prompts a pair's traces are recorded on: a task pair's own questions, else the default mix."""
    from experiments.benchmarks.pair import TASK_PAIRS

    return f"task:{TASK_PAIRS[pair]}" if pair in TASK_PAIRS else None


# The bundled task pair is a pair of byte-level toy models whose step time is Python overhead,
# not compute: its default experiment prices cycles with the analytic model.
ANALYTIC_PAIRS = frozenset({"gsm", "tiny-random"})


def default_cost_model(pair: str, device: str = "auto") -> str:
    """``analytic`` for the toy pairs; else the pair's profile on this device and dtype in the data
    directory (``benchmark cost``'s default path), calibrated on first use."""
    if pair in ANALYTIC_PAIRS:
        return "analytic"
    from envs.specdec.cost import calibrate
    from envs.specdec.pair import resolve_device, resolve_dtype
    from envs.specdec.registry import default_dtype, shared_pair
    from experiments.benchmarks.cost import default_profile_path

    dev = resolve_device(device)
    path = default_profile_path(pair, dev, resolve_dtype(default_dtype(pair), dev))
    if not path.is_file():
        print(f"calibrating the cost model of {pair} on {dev} (once; saved to {path})")
        calibrate(shared_pair(pair, str(dev)), repeats=5).save(path)
    return str(path)


def default_traces(pair: str, split: str, width: int = 4, max_depth: int = 8) -> Path:
    """A DraftVerify trace of ``pair`` in the data directory, recorded on first use."""
    from envs.specdec import data_dir
    from experiments import record_traces

    path = data_dir() / "traces" / f"{pair}__default__w{width}_d{max_depth}_{split}.npz"
    if not path.is_file():
        argv = ["--pair", pair, "--width", str(width), "--max-depth", str(max_depth), "--split", split,
                "--n-prompts", str(N_TRACE_PROMPTS[split]), "--max-new-tokens", str(TRACE_TOKENS),
                "--out", str(path)]  # fmt: skip
        if source := trace_source(pair):
            argv += ["--prompts", source]
        record_traces.main(argv)
    return path


def evaluate_run(env: str, run_dir: Path, args: argparse.Namespace) -> dict[str, Any] | None:
    """Held-out evaluation of the run's policies against every baseline (None when skipped)."""
    out = run_dir / "evaluation.json"
    if env == "draft-verify":
        if args.backend != "replay":
            return None  # live evaluation: python -m experiments.evaluate --env draft-verify
        from experiments import evaluate

        trained = evaluate.run_env_kwargs(str(run_dir))  # evaluate replays the same tree shape
        traces = args.eval_traces or default_traces(args.pair, "heldout", trained["width"], trained["max_depth"])
        evaluate.main(["--env", "draft-verify", "--policy", str(run_dir), "--pair", args.pair, "--device", args.device,
                       "--traces", str(traces), "--cost-model", args.cost_model, "--no-live",
                       "--out", str(out)])  # fmt: skip
    else:
        if args.eval_items < 2:
            return None
        from experiments import evaluate_arbitration

        argv = ["--policy", str(run_dir), "--pair", args.pair, "--n-items", str(args.eval_items),
                "--device", args.device, "--oracle-items", str(args.oracle_items), "--out", str(out)]  # fmt: skip
        if args.task:
            argv += ["--task", args.task]
        evaluate_arbitration.main(argv)
    return json.loads(out.read_text())


def headline(env: str, evaluation: dict[str, Any]) -> dict[str, float]:
    """The few numbers a results table shows for one run."""
    pol = evaluation["policies"]
    if env == "draft-verify":
        best = pol[f"static_k{evaluation['best_static_k']}"]
        return {
            "learned_tokens_per_s": pol["learned"]["tokens_per_s"],
            "best_static_tokens_per_s": best["tokens_per_s"],
            "learned_over_best_static": evaluation["learned_over_best_static"],
            "learned_fraction_of_oracle": pol["learned"]["fraction_of_oracle"],
            "best_static_k": evaluation["best_static_k"],
        }
    d = evaluation["paired_diff_vs_target_only"]
    return {
        "learned_accuracy": pol["learned"]["accuracy"],
        "target_only_accuracy": pol["target_only"]["accuracy"],
        "learned_minus_target_only": d["mean"],
        "learned_mean_accepted_length": pol["learned"]["mean_accepted_length"],
        "target_only_mean_accepted_length": pol["target_only"]["mean_accepted_length"],
    }


def markdown(env: str, evaluation: dict[str, Any]) -> str:
    """results.md: the run's evaluation table."""
    pol = evaluation["policies"]
    if env == "draft-verify":
        head = (f"# DraftVerify: {evaluation['pair']}, {evaluation['n_prompts']} held-out prompts, cost model "
                f"{Path(evaluation['cost_model']).name}\n\n| policy | tokens/s | mean accepted length | of oracle |\n"
                "|---|---|---|---|\n")  # fmt: skip
        rows = [f"| {n} | {r['tokens_per_s']:.1f} | {r['mean_accepted_length']:.2f} | {r['fraction_of_oracle']:.1%} |"
                for n, r in sorted(pol.items(), key=lambda kv: -kv[1]["tokens_per_s"])]  # fmt: skip
        ratio = evaluation["learned_over_best_static"]
        tail = f"\nLearned / best static (k={evaluation['best_static_k']}): {ratio:.3f}\n"
        return head + "\n".join(rows) + "\n" + tail
    d = evaluation["paired_diff_vs_target_only"]
    head = (f"# Arbitration: {evaluation['pair']}, {evaluation['task']}, {evaluation['n_items']} held-out items\n\n"
            "| policy | accuracy | 95% CI | mean accepted length | draft kept |\n|---|---|---|---|---|\n")  # fmt: skip
    rows = [f"| {n} (n={r['n_items']}) | {r['accuracy']:.1%} | [{r['accuracy_ci95'][0]:.1%}, "
            f"{r['accuracy_ci95'][1]:.1%}] | {r['mean_accepted_length']:.2f} | {r['draft_kept_fraction']:.1%} |"
            for n, r in sorted(pol.items(), key=lambda kv: -kv[1]["accuracy"])]  # fmt: skip
    tail = f"\nLearned - target-only (paired): {d['mean']:+.1%} [{d['ci95'][0]:+.1%}, {d['ci95'][1]:+.1%}]\n"
    return head + "\n".join(rows) + "\n" + tail


def report_run(env: str, run_dir: Path, evaluation: dict[str, Any] | None, tracker=None) -> list[Path]:
    """results.md and the PNG plots in ``run_dir``; the same metrics and images to W&B."""
    pngs = [p for p in [plots.learning_curves(run_dir, run_dir / "learning_curves.png")] if p]
    if not pngs:
        print("no learning curves: no stage reached its first evaluation (eval_freq in the config is more than "
              "its timesteps)")  # fmt: skip
    if evaluation is not None:
        (run_dir / "results.md").write_text(markdown(env, evaluation))
        if env == "draft-verify":
            pngs.append(plots.draft_verify_policies(evaluation, run_dir / "policies_throughput.png"))
        else:
            pngs.append(plots.arbitration_tradeoff(evaluation, run_dir / "accuracy_vs_speed.png"))
    if tracker is not None:
        import wandb

        metrics = {f"eval/{k}": v for k, v in headline(env, evaluation).items()} if evaluation else {}
        tracker.log(metrics | {f"plots/{p.stem}": wandb.Image(str(p)) for p in pngs})
    return pngs


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, sd, min and max over runs (seeds) of every headline number, per env."""
    out: dict[str, Any] = {}
    for env in sorted({r["env"] for r in rows}):
        runs = [r for r in rows if r["env"] == env and r.get("headline")]
        keys = runs[0]["headline"].keys() if runs else []
        out[env] = {"seeds": [r["seed"] for r in runs], "run_dirs": [r["run_dir"] for r in runs]}
        series = {key: [float(r["headline"][key]) for r in runs] for key in keys}
        if runs and all("seconds" in r for r in runs):
            series["wall_minutes"] = [r["seconds"] / 60 for r in runs]  # training + evaluation
        for key, values in series.items():
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            out[env][key] = {"mean": statistics.fmean(values), "sd": sd, "min": min(values), "max": max(values)}
    return out
