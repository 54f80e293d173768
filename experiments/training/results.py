"""After training: evaluate on held-out data, write results.md and PNG plots, log them to W&B,
and summarise several runs (seeds) with mean and spread."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from experiments import plots
from experiments.artifacts import default_traces
from experiments.training.args import TrainArgs


def evaluate_run(env: str, run_dir: Path, args: TrainArgs) -> dict[str, Any] | None:
    """Held-out evaluation of the run's policies against every baseline (None when skipped)."""
    out = str(run_dir / "evaluation.json")
    if env == "draft-verify":
        if args.backend != "replay":
            return None  # live evaluation: python -m experiments.evaluate --env draft-verify
        from experiments.evaluate import EvalSettings, evaluate_draft_verify
        from experiments.runs import run_env_kwargs

        trained = run_env_kwargs(str(run_dir))  # evaluate replays the same tree shape
        shape = (trained["width"], trained["max_depth"])
        traces = args.eval_traces or default_traces(args.pair, "heldout", *shape, args.prompts)
        return evaluate_draft_verify(
            EvalSettings(
                policy=str(run_dir),
                pair=args.pair,
                device=args.device,
                traces=str(traces),
                cost_model=args.cost_model,
                no_live=True,
                out=out,
            )
        )
    if not args.eval_items or args.eval_items < 2:
        return None
    from experiments.evaluate_arbitration import ArbitrationEvalSettings, evaluate_arbitration
    from experiments.runs import run_env_kwargs

    trained = run_env_kwargs(str(run_dir))  # the same decoding; the judge fits the training record's items
    return evaluate_arbitration(
        ArbitrationEvalSettings(
            policy=str(run_dir),
            pair=args.pair,
            task=trained["task"],
            n_items=args.eval_items,
            validation_items=args.validation_items,
            train_items=trained["n_items"],
            k=trained.get("k", 4),
            max_new_tokens=trained.get("max_new_tokens", 64),
            device=args.device,
            out=out,
        )
    )


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
        head = (
            f"# DraftVerify: {evaluation['pair']}, {evaluation['n_prompts']} held-out prompts, cost model "
            f"{Path(evaluation['cost_model']).name}\n\n| policy | tokens/s | mean accepted length | of oracle |\n"
            "|---|---|---|---|\n"
        )
        rows = [
            f"| {n} | {r['tokens_per_s']:.1f} | {r['mean_accepted_length']:.2f} | {r['fraction_of_oracle']:.1%} |"
            for n, r in sorted(pol.items(), key=lambda kv: -kv[1]["tokens_per_s"])
        ]
        ratio = evaluation["learned_over_best_static"]
        tail = f"\nLearned / best static (k={evaluation['best_static_k']}): {ratio:.3f}\n"
        return head + "\n".join(rows) + "\n" + tail
    d = evaluation["paired_diff_vs_target_only"]
    head = (
        f"# Arbitration: {evaluation['pair']}, {evaluation['task']}, {evaluation['n_items']} held-out items\n\n"
        "| policy | accuracy | 95% CI | mean accepted length | draft kept |\n|---|---|---|---|---|\n"
    )
    rows = [
        f"| {n} (n={r['n_items']}) | {r['accuracy']:.1%} | [{r['accuracy_ci95'][0]:.1%}, "
        f"{r['accuracy_ci95'][1]:.1%}] | {r['mean_accepted_length']:.2f} | {r['draft_kept_fraction']:.1%} |"
        for n, r in sorted(pol.items(), key=lambda kv: -kv[1]["accuracy"])
    ]
    tail = f"\nLearned - target-only (paired): {d['mean']:+.1%} [{d['ci95'][0]:+.1%}, {d['ci95'][1]:+.1%}]\n"
    return head + "\n".join(rows) + "\n" + tail


def report_run(env: str, run_dir: Path, evaluation: dict[str, Any] | None, tracker=None) -> list[Path]:
    """results.md and the PNG plots in ``run_dir``; the same metrics and images to W&B."""
    pngs = [p for p in [plots.learning_curves(run_dir, run_dir / "learning_curves.png")] if p]
    if not pngs:
        print(
            "no learning curves: no stage reached its first evaluation (eval_freq in the config is more than "
            "its timesteps)"
        )
    if evaluation is not None:
        (run_dir / "results.md").write_text(markdown(env, evaluation))
        if env == "draft-verify":
            pngs.append(plots.draft_verify_policies(evaluation, run_dir / "policies_throughput.png"))
            pngs += plots.evaluation_plots(evaluation, run_dir / "evaluation.json")  # actions, categories
        else:
            pngs.append(plots.arbitration_tradeoff(evaluation, run_dir / "accuracy_vs_speed.png"))
    if tracker is not None:
        import wandb

        metrics = {f"eval/{k}": v for k, v in headline(env, evaluation).items()} if evaluation else {}
        if evaluation and env == "draft-verify":
            from experiments.training.tracking import draft_verify_logs

            metrics |= draft_verify_logs(evaluation)
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
