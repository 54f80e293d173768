"""Render docs/results.md, the results tables, from the benchmark JSONs in docs/results/.

    python -m experiments.report            # (re)write docs/results.md
    python -m experiments.report --print    # print the tables instead
    python -m experiments.report --summarise runs/arbitration__ppo__* --out docs/results/seeds.json
                                            # mean and spread over runs (seeds) -> a results JSON

Figures are never typed by hand: each table row comes from one JSON a benchmark wrote.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from envs.specdec import SpecGymError
from experiments.cli import CommandParser, run_main

PAGE = "docs/results.md"


def _load(results_dir: Path, kind: str) -> list[dict]:
    rows = []
    for path in sorted(results_dir.glob("*.json")):
        data = json.loads(path.read_text())
        if data.get("benchmark") == kind:
            rows.append({**data, "_file": path.name})
    return rows


def _device(r: dict) -> str:
    """Device and dtype (results from before the dtype key ran in float32)."""
    return f"{r['device']}, {r.get('dtype', 'float32')}"


def _identical(r: dict, key: str = "identical_outputs", divergences: str = "divergences") -> str:
    """``True``, or how many outputs differed and the largest float32 logit gap where they did."""
    if r.get(key, True) or not r.get(divergences):
        return str(r.get(key, "-"))
    gaps = [d["float32_logit_gap"] for d in r[divergences]]
    context = f" (median top-2 gap {r['float32_top2_gap']['p50']:.2f})" if r.get("float32_top2_gap") else ""
    return f"no, at near-ties: {len(gaps)} outputs, float32 gap <= {max(gaps):.2f}{context}"


def _head(caption: str, columns: list[str]) -> list[str]:
    """A table's caption, blank line, header row and separator row."""
    return [caption, "", "| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]


def _ms(mean_sd: dict) -> str:
    return f"{mean_sd['mean']:.1f} ± {mean_sd['std']:.1f}"


def engine_table(rows: list[dict]) -> list[str]:
    lines = _head(
        "**Engine vs transformers' assisted generation** (`benchmark engine`, greedy, fixed k; tokens/s "
        "mean ± sd over interleaved repeats; ratio = SpecGym / assisted per repeat):",
        [
            "pair",
            "device",
            "k",
            "prompts x tokens",
            "repeats",
            "target-only",
            "SpecGym",
            "HF assisted",
            "SpecGym / HF (min)",
            "identical",
            "file",
        ],
    )
    for r in rows:
        t = r["tokens_per_s"]
        ratio = r["specgym_over_hf_assisted"]
        lines.append(
            f"| {r['pair']} | {_device(r)} | {r['k']} | {r['n_prompts']} x {r['max_new_tokens']} | {r['repeats']} "
            f"| {_ms(t['target_ar'])} | {_ms(t['specgym'])} | {_ms(t['hf_assisted'])} "
            f"| {ratio['mean']:.2f} ({ratio['min']:.2f}) | {_identical(r)} | {r['_file']} |"
        )
    return lines


def cost_table(rows: list[dict]) -> list[str]:
    lines = _head(
        "**Profiled cost model** (`benchmark cost`: calibrated, saved, reloaded, then scored on fresh "
        "decoding at several k):",
        ["pair", "device", "cycles", "median abs. error per cycle", "p90", "per generation", "file"],
    )
    for r in rows:
        lines.append(
            f"| {r['pair']} | {_device(r)} | {r['n_cycles']} | {r['cycle_median_abs_rel_error']:.1%} "
            f"| {r['cycle_p90_abs_rel_error']:.1%} | {r['generation_median_abs_rel_error']:.1%} | {r['_file']} |"
        )
    return lines


def pair_table(rows: list[dict]) -> list[str]:
    lines = _head(
        "**Pairs** (`benchmark pair`: greedy, held-out prompts, target-only and every k interleaved in one run):",
        [
            "pair",
            "device",
            "prompts x tokens",
            "mean accepted length (k)",
            "acceptance rate",
            "best static k",
            "speedup at best k",
            "identical",
            "file",
        ],
    )
    for r in rows:
        lines.append(
            f"| {r['pair']} | {_device(r)} | {r['n_prompts']} x {r['max_new_tokens']} "
            f"| {r['mean_accepted_length']:.2f} ({r['mean_accepted_length_k']}) | {r['acceptance_rate']:.1%} "
            f"| {r['best_static_k']} | {r['speedup_best_static_k']:.2f}x | {_identical(r)} | {r['_file']} |"
        )
    return lines


def draft_verify_table(rows: list[dict]) -> list[str]:
    lines = _head(
        "**DraftVerify policies** (`evaluate --env draft-verify`: a held-out trace, or one recorded for a prompt "
        "file, replayed under the cost model; best rule: the fastest of the dynamic rules at their published "
        "thresholds, each also with the expected size rule; measured = live decoding, wall clock, interleaved):",
        [
            "pair",
            "cost model",
            "prompts",
            "n",
            "learned / best static (k)",
            "learned / best rule (rule)",
            "learned of oracle",
            "best static of oracle",
            "measured learned / best static",
            "identical (live)",
            "learned departs from best rule",
            "file",
        ],
    )
    for r in rows:
        pol = r["policies"]
        departs = (r.get("learned_departure_from_best_rule") or {}).get("all")
        best = pol[f"static_k{r['best_static_k']}"]
        measured = r.get("measured_learned_over_best_static")
        rule = f"{r['learned_over_best_rule']:.3f} ({r['best_rule']})" if "best_rule" in r else "-"
        lines.append(
            f"| {r['pair']} | {Path(r['cost_model']).name} | {Path(r.get('prompts', '-')).name} | {r['n_prompts']} "
            f"| {r['learned_over_best_static']:.3f} ({r['best_static_k']}) | {rule} "
            f"| {pol['learned']['fraction_of_oracle']:.1%} "
            f"| {best['fraction_of_oracle']:.1%} | {f'{measured:.3f}' if measured else '-'} "
            f"| {_identical(r, 'measured_identical_outputs', 'measured_divergences')} "
            f"| {'-' if departs is None else f'{departs:.0%} of decisions'} | {r['_file']} |"
        )
    return lines


TRANSFER = ("randomized", "specialist", "best_static", "best_rule", "oracle")


def _modal(actions: dict[str, int]) -> str:
    """The most frequent action value and its share of cycles (a collapsed policy: 100%)."""
    value = max(actions, key=actions.__getitem__)
    return f"{value} ({actions[value] / sum(actions.values()):.0%})"


def draft_verify_category_table(rows: list[dict]) -> list[str]:
    rows = [r for r in rows if r.get("per_category")]
    if not rows:
        return []
    lines = _head(
        "**DraftVerify by category** (`evaluate --env draft-verify --prompts FILE` with a `category` per prompt; "
        "tokens/s under the cost model; best static k and best rule: over all prompts, the ratio to the "
        "category's own best static k beside it; learned depth / size: its most frequent draft depth and "
        "verification size per cycle, share of cycles):",
        [
            "pair",
            "prompts",
            "category",
            "n",
            "learned",
            "best static k",
            "best rule",
            "oracle",
            "target-only",
            "learned / best static k (its own k)",
            "learned / best rule",
            "learned depth / size",
            "wall s (all categories)",
            "file",
        ],
    )
    for r in rows:
        k, rule = f"static_k{r['best_static_k']}", r["best_rule"]
        rate = {name: row["tokens_per_s"] for name, row in r["policies"].items()}
        actions = r["policies"]["learned"]["actions"]
        cells = [("all", r["n_prompts"], rate, r["learned_over_best_static"], r["best_static_k"])]
        for c, pol in r["per_category"].items():
            facts = r["categories"][c]
            own = {name: row["tokens_per_s"] for name, row in pol.items()}
            cells.append((c, facts["n_prompts"], own, facts["learned_over_best_static"], facts["best_static_k"]))
        for c, n, t, own_ratio, own_k in cells:
            lines.append(
                f"| {r['pair']} | {Path(r['prompts']).name} | {c} | {n} | {t['learned']:.1f} "
                f"| {t[k]:.1f} ({r['best_static_k']}) | {t[rule]:.1f} ({rule}) | {t['oracle']:.1f} "
                f"| {t['target_only']:.1f} | {t['learned'] / t[k]:.3f} ({own_ratio:.3f}, k={own_k}) "
                f"| {t['learned'] / t[rule]:.3f} "
                f"| {_modal(actions['depth']) + ' / ' + _modal(actions['verify_size']) if c == 'all' else ''} "
                f"| {r['wall_seconds']:.0f} | {r['_file']} |"
            )
    return lines


HEADROOM = (
    "oracle",
    "oracle_depth",
    "best_static",
    "confidence_tuned",
    "specdec++_tuned",
    "confidence_expected_tuned",
    "specdec++_expected_tuned",
    "learned",
    "learned_depth_hindsight_size",
    "hindsight_depth_learned_size",
)


def _pair_label(result: dict) -> str:
    """The pair's name, with the variant ``--tag`` gave the results (if any)."""
    return f"{result['pair']} ({result['tag']})" if result.get("tag") else result["pair"]


def headroom_table(rows: list[dict]) -> list[str]:
    lines = _head(
        "**DraftVerify headroom** (`benchmark headroom`: held-out trace under the cost model, tokens/s (of oracle); "
        "oracle_depth = hindsight on the depth only, verifying all it drafts; rules tuned on the train trace, "
        "_expected: with the expected-value size rule; "
        "the last two: the learned pair with one role in hindsight; per prompt: confidence_expected with its "
        "threshold picked per prompt in hindsight; draft speedup = the same with every draft "
        "forward that much faster, a what-if; first-token AUC: of the draft's top probability / of a logistic "
        "fit on every draft-side feature / the same with the target's side too (`--target-features`)):",
        ["pair", "width", "draft speedup", *HEADROOM, "per prompt", "first-token AUC (hit rate)", "file"],
    )

    def cell(entry: dict | None) -> str:
        return f"{entry['tokens_per_s']:.1f} ({entry['fraction_of_oracle']:.0%})" if entry else "-"

    for r in rows:
        first = r["first_token_acceptance"]
        fits = [first.get("auc_fitted", float("nan"))]
        fits += [first["auc_fitted_target"]] if "auc_fitted_target" in first else []
        per_prompt = r.get("by_prompt", {}).get("confidence_expected_per_prompt_hindsight")
        for row in r["rows"]:
            cells = [cell(row.get(n)) for n in HEADROOM] + [cell(per_prompt if row["draft_speedup"] == 1 else None)]
            pair = _pair_label(r)
            lines.append(
                f"| {pair} | {r['width']} | {row['draft_speedup']:g}x | {' | '.join(cells)} "
                f"| {' / '.join(f'{a:.3f}' for a in (first['auc'], *fits))} ({first['hit_rate']:.0%}) "
                f"| {r['_file']} |"
            )
    return lines


def transfer_table(rows: list[dict]) -> list[str]:
    lines = _head(
        "**DraftVerify transfer** (`benchmark transfer`: held-out trace under each test profile, tokens/s (of "
        "oracle); randomized = one policy pair trained under a cost family, specialist = trained on that profile "
        "alone (mean over seeds), best static k on the held-out trace itself, best rule pair tuned on the train "
        "trace; unseen = outside every range the family draws from):",
        ["pair", "family", "profile", *TRANSFER, "randomized / specialist", "/ best static", "/ best rule", "file"],
    )
    for r in rows:
        for profile, pol in r["policies"].items():
            unseen = " (unseen)" if r["profiles"][profile]["unseen"] else ""
            cells = [f"{pol[n]['tokens_per_s']:.1f} ({pol[n]['fraction_of_oracle']:.0%})" for n in TRANSFER]
            ratios = [r[k][profile] for k in ("randomized_over_specialist", "randomized_over_best_static")]
            ratios.append(r["randomized_over_best_rule"][profile])
            lines.append(
                f"| {r['pair']} | {r['family']} | {profile}{unseen} | {' | '.join(cells)} "
                f"| {' | '.join(f'{x:.3f}' for x in ratios)} | {r['_file']} |"
            )
    return lines


def env_table(rows: list[dict]) -> list[str]:
    lines = _head(
        "**Env speed** (`benchmark env`: steps/s in one process, inside `env.step`/`reset` / with the policy's "
        "choice too; the replay target is 20,000):",
        [
            "env",
            "backend",
            "role",
            "pair",
            "width x depth",
            "reward",
            "cost model",
            "policy",
            "steps/s",
            "with policy",
            "device",
            "file",
        ],
    )
    for r in rows:
        reward = r.get("reward", {"reward": "throughput", "credit": "cycle", "rate": None})
        rate = f", rate {reward['rate']}" if reward["rate"] is not None else ""
        cost = Path(r["cost_model"]).stem if r["cost_model"].endswith(".json") else r["cost_model"]
        lines.append(
            f"| {r['env']} | {r['backend']} | {r['role']} | {r['pair']} | {r['width']} x {r['max_depth']} "
            f"| {reward['reward']}, {reward['credit']}{rate} | {cost} | {r['policy']} | {r['steps_per_s']:,.0f} "
            f"| {r['loop_steps_per_s']:,.0f} | {r['device']} | {r['_file']} |"
        )
    return lines


def decode_table(rows: list[dict]) -> list[str]:
    lines = []
    for r in rows:
        lines += _head(
            f"**End-to-end decoding** (`benchmark decode`: {r['pair']}, {r['n_prompts']} prompts x "
            f"{r['max_new_tokens']} tokens, {r['repeats']} interleaved repeats, {_device(r)}; identical outputs: "
            f"{_identical(r)}; `{r['_file']}`):",
            ["method", "tokens/s (mean ± sd)", "vs target-only"],
        )
        for name, m in sorted(r["methods"].items(), key=lambda kv: -kv[1]["speedup_vs_target_only"]):
            t = m["tokens_per_s"]
            lines.append(f"| {name} | {_ms(t)} | {m['speedup_vs_target_only']:.2f}x |")
        lines.append("")
    return lines[:-1]


def task_pair_table(rows: list[dict]) -> list[str]:
    rows = [r for r in rows if "target_accuracy" in r]
    if not rows:
        return []
    lines = _head(
        "**Task pairs** (`benchmark pair`, greedy, held-out items: each model alone, and the items only "
        "the draft answers correctly):",
        ["pair", "task", "items", "target accuracy", "draft accuracy", "draft right, target wrong", "file"],
    )
    for r in rows:
        lines.append(
            f"| {r['pair']} | {r['task']} | {r['n_items']} | {r['target_accuracy']:.1%} | {r['draft_accuracy']:.1%} "
            f"| {r['draft_right_target_wrong']:.1%} | {r['_file']} |"
        )
    return lines


def records_table(rows: list[dict]) -> list[str]:
    lines = _head(
        "**Branch records decoded elsewhere** (`benchmark records`: the pair decoding each item live here, "
        "keeping the target's token, against the record's keep-target path):",
        ["pair", "split", "items", "recorded on", "decoded on", "same mismatches", "same text", "same verdict", "file"],
    )
    for r in rows:
        lines.append(
            f"| {r['pair']} | {r['split']} | {r['n_items']} | {r['recorded_on']} | {_device(r)} | {r['same_path']} "
            f"| {r['same_text']} | {r['same_verdict']} | {r['_file']} |"
        )
    return lines


def arbitration_table(rows: list[dict]) -> list[str]:
    lines = []
    for r in rows:
        d, h, best = r["paired_diff_vs_target_only"], r["headroom"], r["best_rule"]
        tuned_on = r["rules_tuned_on"]
        lines += _head(
            f"**Arbitration policies** (`evaluate --env arbitration`: {r['pair']} pair, {r['task']}, {r['n_items']} "
            f"held-out items replayed from their recorded decision trees, k={r['k']}, recorded on {r['device']}; "
            f"accuracy with 95% Wilson interval; tokens/s = the recorded wall clock of drafting + verification; "
            f"rules tuned on {tuned_on['n_items']} {tuned_on['split']} items, the judge fitted on "
            f"{r['judge_fitted_on']['n_items']} training items; `{r['_file']}`). Learned minus target-only on the "
            f"same items: {d['mean']:+.1%} [{d['ci95'][0]:+.1%}, {d['ci95'][1]:+.1%}]; best rule (by "
            f"{tuned_on['split']} accuracy): {best['name']}; the exact oracle's headroom "
            f"{h['exact_oracle_minus_target_only']:+.1%}, of which the learned policy captures "
            f"{h['headroom_captured']:.0%}.",
            [
                "policy",
                "accuracy",
                "95% CI",
                "vs target-only, paired (95% CI)",
                "mean accepted length",
                "tokens/s",
                "draft kept at mismatches",
                "oracle agreement (decisive)",
            ],
        )
        for name, p in sorted(r["policies"].items(), key=lambda kv: -kv[1]["accuracy"]):
            label = f"{name} ({p['rule']})" if "rule" in p else name
            lo, hi = p["accuracy_ci95"]
            diff = p["diff_vs_target_only"]
            lines.append(
                f"| {label} | {p['accuracy']:.1%} | [{lo:.1%}, {hi:.1%}] | {diff['mean']:+.1%} "
                f"[{diff['ci95'][0]:+.1%}, {diff['ci95'][1]:+.1%}] | {p['mean_accepted_length']:.2f} "
                f"| {p['tokens_per_s']:.0f} | {p['draft_kept_fraction']:.1%} "
                f"| {p['oracle_agreement']:.1%} ({p['oracle_agreement_decisive']:.1%}) |"
            )
        lines.append("")
    return lines[:-1]


def arbitration_ablation_table(rows: list[dict]) -> list[str]:
    lines = []
    for r in rows:
        lines += _head(
            f"**Arbitration training aids** (`arbitration_ablation`: {r['pair']} pair, {r['task']}, PPO "
            f"{r['timesteps']} steps on {r['train_items']} training items' records, scored on "
            f"{r['validation_items']} validation items, seeds {', '.join(map(str, r['seeds']))}; target-only "
            f"{r['target_only_accuracy']:.1%}; winner: {r['winner']}; `{r['_file']}`)",
            ["variant", "accuracy (mean ± sd)", "vs target-only", "draft kept", "oracle agreement"],
        )
        for name, v in r["variants"].items():
            lines.append(
                f"| {name} | {v['accuracy_mean']:.1%} ± {v['accuracy_sd']:.1%} | {v['gain_mean']:+.1%} "
                f"| {v['draft_kept_mean']:.1%} | {v['oracle_agreement_mean']:.1%} |"
            )
        lines.append("")
    return lines[:-1]


def _metric(key: str, x: float) -> str:
    if "minus" in key:
        return f"{x:+.1%}"
    if "minutes" in key:
        return f"{x:.1f}"
    if key.endswith("_k"):
        return f"{x:g}"
    if "accuracy" in key or "fraction" in key:
        return f"{x:.1%}"
    return f"{x:.3f}"


def ablation_table(rows: list[dict]) -> list[str]:
    lines = _head(
        "**DraftVerify ablations** (`python -m experiments.ablations`: one role trained alone on the train trace "
        "beside a rule partner, the pair scored on the held-out trace under the cost model; fraction of the "
        "oracle per seed, against the pair of rules):",
        ["pair", "width", "ablation (role)", "variant", "seeds", "tokens/s", "of oracle", "rule pair", "file"],
    )
    for r in rows:
        ref = r["reference"]
        for variant, v in r["variants"].items():
            rates = ", ".join(f"{x:.2f}" for x in v["tokens_per_s"])
            fractions = ", ".join(f"{x:.1%}" for x in v["fraction_of_oracle"])
            label = variant + "".join(f" ({k} {x:g})" for k, x in v.get("ppo_overrides", {}).items())
            if "departs_from_rule" in v:
                fractions += " (departs from the rule at " + ", ".join(f"{x:.1%}" for x in v["departs_from_rule"]) + ")"
            lines.append(
                f"| {r['pair']} | {r['width']} | {r['ablation']} ({r['role']}) | {label} "
                f"| {', '.join(map(str, v['seeds']))} | {rates} | {fractions} "
                f"| {ref['policy']}: {ref['tokens_per_s']:.2f} ({ref['fraction_of_oracle']:.1%}) "
                f"| {r['_file']} |"
            )
    return lines


def seeds_table(rows: list[dict]) -> list[str]:
    lines = _head(
        "**Training runs** (`report --summarise` over run directories: each run evaluated on the same held-out "
        "data; mean ± sd, min, max over the runs listed; wall minutes = training + evaluation):",
        ["env", "pair", "seeds", "metric", "mean ± sd", "min", "max", "file"],
    )
    for r in rows:
        for env, summary in r["summary"].items():
            seeds = ", ".join(str(s) for s in summary["seeds"])
            pair = _pair_label(r)
            for key, v in summary.items():
                if isinstance(v, dict):
                    cells = [_metric(key, v[x]) for x in ("mean", "sd", "min", "max")]
                    cells[1] = cells[1].lstrip("+")
                    lines.append(
                        f"| {env} | {pair} | {seeds} | {key} | {cells[0]} ± {cells[1]} "
                        f"| {cells[2]} | {cells[3]} | {r['_file']} |"
                    )
    return lines


def summarise_runs(run_dirs: list[Path], tag: str | None = None) -> dict:
    """The multi-seed summary of finished run directories, as a results JSON; ``tag`` labels a
    variant of the pair or setup in the table (as headroom's)."""
    from datetime import datetime, timezone

    from experiments.training.results import summarise

    rows, pairs = [], set()
    for run in run_dirs:
        results = json.loads((Path(run) / "results.json").read_text())
        if not results.get("headline"):
            raise SpecGymError(f"{run} has no evaluated headline; train it with evaluation on")
        rows.append(
            {
                "env": results["env"],
                "seed": results["seed"],
                "run_dir": str(run),
                "headline": results["headline"],
                "seconds": results["total_seconds"],
            }
        )
        pairs.add(results["pair"])
    return {
        "benchmark": "train-summary",
        "pair": ", ".join(sorted(pairs)),
        "tag": tag,
        "runs": rows,
        "summary": summarise(rows),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def render(results_dir: Path) -> str:
    parts = []
    for kind, table in (
        ("engine", engine_table),
        ("cost", cost_table),
        ("pair", pair_table),
        ("pair", task_pair_table),
        ("decode", decode_table),
        ("env", env_table),
        ("evaluate-draft-verify", draft_verify_table),
        ("evaluate-draft-verify", draft_verify_category_table),
        ("headroom", headroom_table),
        ("transfer", transfer_table),
        ("ablation", ablation_table),
        ("evaluate-arbitration", arbitration_table),
        ("records", records_table),
        ("arbitration-ablation", arbitration_ablation_table),
        ("train-summary", seeds_table),
    ):
        rows = _load(results_dir, kind)
        lines = table(rows) if rows else []
        if lines:
            dates = sorted({r.get("date", "?")[:10] for r in rows})
            parts.append("\n".join([*lines, "", f"Measured {', '.join(dates)}; raw JSON in `{results_dir}/`."]))
    return "\n\n".join(parts) if parts else "No results recorded yet."


def page(results_dir: Path) -> str:
    """The whole results page: a title saying where it comes from, then every table."""
    return (
        "# Results (generated by `python -m experiments.report` from "
        f"`{results_dir}/*.json`; do not edit by hand)\n\n"
        "What these figures mean, and what they show, is in [findings/](findings/).\n\n"
        f"{render(results_dir)}\n"
    )


def main(argv: list[str] | None = None) -> None:
    parser = CommandParser(
        prog="python -m experiments.report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", default="docs/results", help="directory of benchmark JSONs")
    parser.add_argument("--print", action="store_true", help="print the tables, do not write the page")
    parser.add_argument("--summarise", nargs="+", type=Path, help="run directories to summarise (with --out)")
    parser.add_argument("--out", type=Path, help=f"where the page goes (default {PAGE}); with --summarise: its JSON")
    parser.add_argument("--tag", help="with --summarise: a label for the runs' variant (e.g. '192 train prompts')")
    args = parser.parse_args(argv)
    if args.summarise:
        if not args.out:
            raise SpecGymError("--summarise needs --out FILE.json")
        args.out.write_text(json.dumps(summarise_runs(args.summarise, args.tag), indent=2) + "\n")
        print(f"wrote {args.out}")
        return
    if args.print:
        print(render(Path(args.results)))
        return
    out = args.out or Path(PAGE)
    out.write_text(page(Path(args.results)))
    print(f"wrote {out}")


if __name__ == "__main__":
    run_main(main)
