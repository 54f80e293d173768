"""Evaluate a trained policy against every baseline on held-out prompts or items.

``--env arbitration`` is handled by ``experiments/evaluate_arbitration.py`` (its own options);
what follows is DraftVerify's.

    python -m experiments.evaluate --env draft-verify --policy RUN_DIR_OR_ZIP --pair NAME \\
        [--traces HELDOUT.npz | --prompts FILE.jsonl] --out FILE.json

Every policy decodes the same prompts. Under the cost model, by replaying a trace (``--traces``,
or one recorded here for ``--prompts``: greedy output never depends on the policy, so replay
gives exactly what live decoding would, and the oracle needs the trace): ``tokens_per_s``,
``mean_accepted_length`` and ``fraction_of_oracle`` for ``learned``, ``oracle``,
``target_only``, ``static_k1`` .. ``static_kN``, the dynamic baselines at their published
thresholds (``heuristic``, ``confidence``, ``specdec++``) and the cost-aware ``expected-depth``,
each also with the ``expected`` size rule (``confidence+expected`` ...; ``best_rule`` names the
fastest of the eight) and
``oracle_depth`` (hindsight on the depth only); each with its ``actions`` (cycles by draft depth
and by verification size), and the learned policy's departure from every rule (the share of its
decisions a rule would have made otherwise at the same state). Prompts with categories (a
Spec-Bench file's ``category``, ``mix:chat``'s kinds) are scored per category as well:
``per_category[category][policy]`` and ``categories[category]``. Then live decoding
with the wall clock (``measured_tokens_per_s``) for ``learned``, the best static k and
``target_only``, interleaved per prompt in one run.

With ``--workers N`` the recording and the live decoding run on N Ray actors, each loading the
pair once (docs/scaling.md); the live prompts are shared among them, each timed where it runs.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from rich.table import Table
from tqdm.auto import tqdm

from envs.pairs.replay_assets import BUNDLED_NAME, bundled_profile, bundled_trace
from envs.partners import make_policy
from envs.specdec import SpecGymError, SpeculativeDecoder
from envs.specdec.cost import device_name, make_cost_model
from envs.specdec.cycles import LiveCycles
from envs.specdec.pair import ModelPair
from envs.specdec.records import mean_accepted_length
from envs.specdec.replay import TraceReplay
from envs.specdec.schedules import EpisodeStats, Policy, rollout
from envs.specdec.trace import Trace
from envs.tasks.prompts import load_prompt_set
from experiments import cli, plots
from experiments.actions import Watched
from experiments.artifacts import default_cost_model, trace_source
from experiments.benchmarks.common import divergences, pool_interleaved
from experiments.cli import (
    CommandParser,
    PairArgs,
    add_pair_args,
    pair_args,
    pair_from_args,
    positive_int,
    run_main,
    write_json,
)
from experiments.record_traces import record_texts
from experiments.runs import check_trace_pair, cost_features, learned_policy, note_other_pair, run_env_kwargs
from experiments.workers import Pool, WorkerArgs, add_worker_args, check_workers, open_pool
from experiments.workloads import category_meta, groups, trace_categories

console = cli.console()
DYNAMIC = ("heuristic", "confidence", "specdec++", "expected-depth")


def summarise_episodes(stats: list[EpisodeStats], per_prompt: bool = True) -> dict:
    tokens = sum(s.tokens for s in stats)
    row = {
        "tokens_per_s": tokens / sum(s.time for s in stats),
        "mean_accepted_length": mean_accepted_length(tokens, sum(s.cycles for s in stats)),
        "speedup_vs_target_only": sum(s.target_time for s in stats) / sum(s.time for s in stats),
    }
    return row | ({"per_prompt_tokens_per_s": [s.tokens_per_s for s in stats]} if per_prompt else {})


def score(episodes: dict[str, list[EpisodeStats]], per_prompt: bool = True) -> dict[str, dict]:
    """Every policy's summary over the same prompts, target-only's, and each as a fraction of the oracle's."""
    out = {name: summarise_episodes(stats, per_prompt) for name, stats in episodes.items()}
    first = next(iter(out.values()))
    out["target_only"] = {
        "tokens_per_s": first["tokens_per_s"] / first["speedup_vs_target_only"],
        "mean_accepted_length": 1.0,
        "speedup_vs_target_only": 1.0,
    }
    best = out["oracle"]["tokens_per_s"]
    for row in out.values():
        row["fraction_of_oracle"] = row["tokens_per_s"] / best
    return out


@dataclass
class CostModelResults:
    """:func:`evaluate_cost_model`'s answer: by policy, by category and policy, and the watched policies."""

    policies: dict[str, dict]
    per_category: dict[str, dict[str, dict]] | None
    watched: dict[str, Watched]


def evaluate_cost_model(
    source: TraceReplay,
    policies: dict[str, Policy],
    categories: list[str] | None = None,
    shadows: dict[str, dict[str, Policy]] | None = None,
) -> CostModelResults:
    """Every policy on every prompt of ``source``: the summary over all prompts and, with
    ``categories`` (one per prompt), over each category's; each policy's actions counted, and
    compared with its ``shadows``' (by policy name: rule name -> rule) at the same states."""
    watched = {name: Watched(policy, (shadows or {}).get(name)) for name, policy in policies.items()}
    episodes = {
        name: [rollout(policy, source, i) for i in range(source.n_prompts)]
        for name, policy in tqdm(watched.items(), desc="policies (cost model)")
    }
    results = score(episodes)
    for name, w in watched.items():
        results[name]["actions"] = w.histograms()
    by_category = None
    if categories is not None:
        by_category = {
            category: score({name: [stats[i] for i in indices] for name, stats in episodes.items()}, per_prompt=False)
            for category, indices in groups(categories).items()
        }
    return CostModelResults(results, by_category, watched)


def measure_live(
    pool: Pool, prompts: list[list[int]], policies: dict[str, str], s: EvalSettings
) -> tuple[dict[str, float], list]:
    """Wall-clock tokens/s, policies (by name: see :func:`live_methods`) and target-only interleaved
    per prompt, on the pool's workers; and where a policy's output left the target's greedy tokens
    (never in float32; bfloat16 ties: benchmarks.common)."""
    make = functools.partial(live_methods, policies=policies, settings=s, prompts=prompts)
    rates, outputs, _ = pool_interleaved(pool, make, list(range(len(prompts))), 1)
    find = functools.partial(divergences, prompts=prompts, outputs=outputs, reference="target_only")
    return {name: r[0] for name, r in rates.items()}, pool.call(find)


def live_methods(
    pair: ModelPair, *, policies: dict[str, str], settings: EvalSettings, prompts: list[list[int]]
) -> dict[str, Callable[[int], list[int]]]:
    """Decoding prompt ``i`` with each policy (``learned``: the run's; else a partner name such as
    ``static-3``) and with the target alone, on ``pair`` (a worker's, with --workers)."""
    s = settings
    made = {
        name: learned_policy(s.policy, s.verify_policy) if spec == "learned" else make_policy(spec)
        for name, spec in policies.items()
    }
    # the policies observe cost-model features (as in training); the clock is the wall clock
    source = LiveCycles(
        pair,
        prompts,
        cost=make_cost_model(s.cost_model),
        width=s.width,
        max_depth=s.max_depth,
        max_new_tokens=s.max_new_tokens,
        cost_features=cost_features(made["learned"], s.max_depth, s.width) if "learned" in made else "ratios",
    )
    dec = SpeculativeDecoder(pair)

    def decode_with(policy: Policy) -> Callable[[int], list[int]]:
        def go(i: int) -> list[int]:
            rollout(policy, source, i)
            return source.state.new_tokens

        return go

    methods = {name: decode_with(policy) for name, policy in made.items()}
    methods["target_only"] = lambda i: dec.generate_target(prompts[i], s.max_new_tokens).tokens
    return methods


def prompt_source(meta: dict) -> str:
    """Where a trace's prompts came from: the file or task names given, else the seeded default mix."""
    return meta.get("prompts") or f"default mix ({meta.get('split', 'heldout')})"


def resolve_pair_name(settings: EvalSettings, trained: dict) -> str:
    """``--pair`` defaults to the pair the run trained on (tiny-random for a bare .zip); another
    pair is allowed (a transfer test) and said so."""
    run_pair = trained.get("pair")
    if settings.pair is None:
        return run_pair or "tiny-random"
    if not (settings.target or settings.draft):
        note_other_pair(settings.policy, run_pair, settings.pair)
    return settings.pair


@dataclass(kw_only=True)
class EvalSettings(PairArgs, WorkerArgs):
    """``python -m experiments.evaluate --env draft-verify``'s options (None: resolved as the help says)."""

    policy: str
    verify_policy: str | None = None
    traces: str | None = None
    prompts: str | None = None
    n_prompts: int | None = None
    max_new_tokens: int | None = None
    width: int | None = None
    max_depth: int | None = None
    cost_model: str = "auto"
    no_live: bool = False
    out: str | None = None


def build_parser() -> argparse.ArgumentParser:
    p = CommandParser(
        prog="python -m experiments.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--env",
        default="draft-verify",
        choices=["draft-verify", "arbitration"],
        help="arbitration: see python -m experiments.evaluate --env arbitration --help",
    )
    p.add_argument(
        "--policy",
        required=True,
        help="a run directory, a published policy's name (envs/policies), or a depth-policy .zip",
    )
    p.add_argument("--verify-policy", help="a size-policy .zip to pair with a depth-policy .zip")
    add_pair_args(p, default=None, default_help="the run's, else tiny-random")
    p.add_argument(
        "--traces",
        help="held-out trace .npz to replay, or bundled (the pair's shipped one; default: record one for --prompts)",
    )
    p.add_argument(
        "--prompts",
        help="a .jsonl file (with a 'category' per record: results per category too), mix:chat, task:NAME "
        "or reasoning-gym task names (default: the pair's training prompts' kind, held out: task:NAME for a "
        "task pair, else generated questions)",
    )
    p.add_argument(
        "--n-prompts", type=positive_int, default=None, help="prompts to record (default: 20; a trace's: all)"
    )
    p.add_argument("--max-new-tokens", type=int, default=None, help="default: the trace's, or 128 when recording")
    p.add_argument("--width", type=int, default=None, help="tree width (default: the run's, else 4)")
    p.add_argument("--max-depth", type=int, default=None, help="(default: the run's, else 8)")
    p.add_argument(
        "--cost-model",
        default="auto",
        help="auto (the run's unless measured, else train's auto) | analytic | profile .json | bundled",
    )
    p.add_argument("--no-live", action="store_true", help="skip the wall-clock measurement")
    p.add_argument("--out", help="write the results JSON here")
    add_worker_args(p)
    return p


def resolve(settings: EvalSettings) -> EvalSettings:
    """Every option that defaults to the run's (pair, tree shape, cost model) or the pair's (prompts)
    filled in, after the checks that need no model."""
    s, trained = settings, run_env_kwargs(settings.policy)
    pair = resolve_pair_name(s, trained)
    width = s.width or int(trained.get("width", 4))
    if s.traces == BUNDLED_NAME:  # the pair's held-out trace shipped for SpecGym/DraftVerify-v1
        s = replace(s, traces=str(bundled_trace(pair, "heldout", width)))
    if s.traces and not (s.target or s.draft):
        check_trace_pair(s.traces, Trace.load_meta(s.traces), pair)
    if s.traces and (s.prompts or s.n_prompts):
        raise SpecGymError(
            "pass --traces (a recorded trace, all its prompts scored) or --prompts/--n-prompts "
            "(recorded here), not both"
        )
    if s.verify_policy and Path(s.policy).is_dir():
        raise SpecGymError("a run directory brings its own size policy; pass --verify-policy with a depth-policy .zip")
    if s.cost_model == "measured":
        raise SpecGymError(
            "the wall clock is measured separately (measured_tokens_per_s); pass --cost-model "
            "auto, analytic or a profile .json for the replayed comparison"
        )
    cost_model = s.cost_model
    if cost_model == "auto":
        # the run's cost model, unless it trained on the wall clock or on another pair (whose profile it is)
        run_cost = trained.get("cost_model") if trained.get("pair", pair) == pair else None
        cost_model = run_cost if run_cost not in (None, "measured") else default_cost_model(pair, s.device)
    if cost_model == BUNDLED_NAME:
        cost_model = str(bundled_profile(pair))
    return replace(
        s,
        pair=pair,
        width=width,
        max_depth=s.max_depth or int(trained.get("max_depth", 8)),
        cost_model=cost_model,
        prompts=s.prompts or (None if s.traces else trace_source(pair)),  # a task pair's own questions
    )


def recorded_trace_path(out: str) -> Path:
    """Where an evaluation that records its own trace keeps it: beside its ``--out`` JSON."""
    return Path(out).with_suffix(".trace.npz")


def evaluate_on(pool: Pool, s: EvalSettings) -> tuple[dict, dict]:
    """The cost-model comparison on a replayed trace (recorded by the pool's workers unless --traces)
    and the live wall-clock comparison on them; the results by policy and the run's facts."""
    pair_info = pool.call(describe_pair)
    cost = make_cost_model(s.cost_model)
    clock: dict[str, float] = {}
    if s.traces:
        trace: Trace | str = s.traces
    else:
        start = time.perf_counter()
        given = load_prompt_set(s.prompts, s.n_prompts or 20)
        shape = {"max_new_tokens": s.max_new_tokens or 128, "width": s.width, "max_depth": s.max_depth}
        meta = {"prompts": s.prompts, **category_meta(given.categories)}
        trace = record_texts(pool, given.texts, chunk=64, meta=meta, **shape)
        clock["record_seconds"] = time.perf_counter() - start
        if s.out:  # kept, so other policies are scored on the same trees with --traces, without recording
            trace.save(recorded_trace_path(s.out))
    start = time.perf_counter()
    learned = learned_policy(s.policy, s.verify_policy)
    source = TraceReplay(
        trace,
        cost=cost,
        width=s.width,
        max_depth=s.max_depth,
        max_new_tokens=s.max_new_tokens,
        cost_features=cost_features(learned, s.max_depth, s.width),
    )
    categories = trace_categories(source.trace.meta, source.n_prompts, s.traces or "the recorded trace")
    prompts = [source.trace.prompt(i).prompt.tolist() for i in range(source.n_prompts)]
    s = replace(s, max_new_tokens=source.max_new_tokens)
    policies: dict[str, Policy] = {"learned": learned, "oracle": make_policy("oracle", source=source)}
    policies |= {f"static_k{k}": make_policy(f"static-{k}") for k in range(1, s.max_depth + 1)}
    policies |= {name: make_policy(name) for name in DYNAMIC}
    # each rule also with the expected size rule picking the verified nodes (EAGLE-2 style)
    policies |= {f"{name}+expected": make_policy(f"{name}+expected") for name in DYNAMIC}
    policies["oracle_depth"] = make_policy("oracle-depth", source=source)
    rules = [*DYNAMIC, *(f"{name}+expected" for name in DYNAMIC)]
    # the learned policy's decisions, each compared with every rule's at the same state
    shadows = {"learned": {rule: make_policy(rule) for rule in rules}}
    evaluated = evaluate_cost_model(source, policies, categories, shadows)
    results = evaluated.policies
    clock["replay_seconds"] = time.perf_counter() - start
    statics = [f"static_k{k}" for k in range(1, s.max_depth + 1)]
    best_static = max(statics, key=lambda n: results[n]["tokens_per_s"])
    best_rule = max(rules, key=lambda n: results[n]["tokens_per_s"])
    watched = evaluated.watched["learned"]
    info = {
        **pair_info,
        "source": source,
        "prompts": prompts,
        "best_static": best_static,
        "best_rule": best_rule,
        "per_category": evaluated.per_category,
        "departure": {rule: watched.departure(rule) for rule in rules},
        "clock": clock,
    }
    if not s.no_live:
        start = time.perf_counter()
        live_policies = {"learned": "learned", best_static: best_static.replace("static_k", "static-")}
        live, info["diverged"] = measure_live(pool, prompts, live_policies, s)
        for name, rate in live.items():
            results[name]["measured_tokens_per_s"] = rate
        clock["live_seconds"] = time.perf_counter() - start
    return results, info


def category_summary(per_category: dict[str, dict[str, dict]], overall_best_static: str, n: dict[str, int]) -> dict:
    """Per category: its prompts, its best static k and best rule, and the learned policy over each
    (and over the static k that is best over all prompts)."""
    out = {}
    for category, pol in per_category.items():
        rate = {name: row["tokens_per_s"] for name, row in pol.items()}
        best_static = max((k for k in rate if k.startswith("static_k")), key=rate.__getitem__)
        best_rule = max((k for k in rate if k in DYNAMIC or k.endswith("+expected")), key=rate.__getitem__)
        out[category] = {
            "n_prompts": n[category],
            "best_static_k": int(best_static.removeprefix("static_k")),
            "learned_over_best_static": rate["learned"] / rate[best_static],
            "learned_over_overall_best_static": rate["learned"] / rate[overall_best_static],
            "best_rule": best_rule,
            "learned_over_best_rule": rate["learned"] / rate[best_rule],
        }
    return out


def describe_pair(pair: ModelPair) -> dict[str, str]:
    """What the results JSON says of the pair (read where it is loaded: a worker, with --workers)."""
    return {"pair": pair.name, "device": device_name(pair.device), "dtype": pair.dtype_name}


def evaluate_draft_verify(settings: EvalSettings) -> dict:
    """The learned policy against every baseline (see the module docstring); the results JSON."""
    started = time.perf_counter()
    s = resolve(settings)
    check_workers(s.workers, s.ray_address, s.device)
    with open_pool(
        functools.partial(pair_from_args, pair_args(s)),
        workers=s.workers,
        address=s.ray_address,
        threads=s.threads,
        device=s.device,
    ) as pool:
        results, info = evaluate_on(pool, s)
    source, prompts, diverged = info["source"], info["prompts"], info.get("diverged")
    best_static, best_rule = info["best_static"], info["best_rule"]
    out = {
        "benchmark": "evaluate-draft-verify",
        "env": "draft-verify",
        "pair": info["pair"],
        "device": info["device"],
        "dtype": info["dtype"],
        "cost_model": s.cost_model,
        "backend": "replay",
        "policy": s.policy,
        "verify_policy": s.verify_policy,
        "traces": s.traces or (str(recorded_trace_path(s.out)) if s.out else "recorded for the prompts"),
        "prompts": prompt_source(source.trace.meta),
        "n_prompts": len(prompts),
        "width": s.width,
        "max_depth": s.max_depth,
        "best_static_k": int(best_static.removeprefix("static_k")),
        "learned_over_best_static": results["learned"]["tokens_per_s"] / results[best_static]["tokens_per_s"],
        "best_rule": best_rule,
        "learned_over_best_rule": results["learned"]["tokens_per_s"] / results[best_rule]["tokens_per_s"],
        "learned_departure_from_best_rule": info["departure"][best_rule],
        "learned_departure_from_rules": info["departure"],
        "policies": results,
        **context_facts(source, s.cost_model),
    }
    if info["per_category"] is not None:
        n = {c: len(idx) for c, idx in groups(trace_categories(source.trace.meta, source.n_prompts)).items()}
        out["categories"] = category_summary(info["per_category"], best_static, n)
        out["per_category"] = info["per_category"]
    if not s.no_live:
        out["measured_identical_outputs"] = not diverged
        out["measured_divergences"] = diverged
        out["measured_learned_over_best_static"] = (
            results["learned"]["measured_tokens_per_s"] / results[best_static]["measured_tokens_per_s"]
        )
    out |= info["clock"] | {"wall_seconds": time.perf_counter() - started}
    out["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    print_tables(out, s.cost_model)
    write_json(s.out, out)
    if s.out:
        for png in plots.evaluation_plots(out, Path(s.out)):
            console.print(f"plot: {png}")
    return out


def context_facts(source: TraceReplay, cost_model: str) -> dict:
    """The longest context replayed (prompt and output); with a profile, a note when it runs past
    the longest context calibrated, where the profile holds its last measured times."""
    trace = source.trace
    outputs = np.minimum(np.diff(trace.output_offsets), source.max_new_tokens)
    lengths = (np.diff(trace.prompt_offsets) + outputs).tolist()
    out: dict = {"longest_context": max(lengths)}
    calibrated = getattr(source.cost, "contexts", None)
    if calibrated and max(lengths) > max(calibrated):
        out["cost_model_note"] = (
            f"{sum(n > max(calibrated) for n in lengths)} prompt(s) run past the profile's longest calibrated "
            f"context ({max(calibrated)} tokens, longest here {max(lengths)}): their cycles there are priced "
            f"as at {max(calibrated)}"
        )
        console.print(f"note: {out['cost_model_note']}")
    return out


def print_tables(out: dict, cost_model: str) -> None:
    """The results by policy, the learned policy's departure from the best rule and, with
    categories, tokens/s by category."""
    results, best_rule = out["policies"], out["best_rule"]
    table = Table(title=f"DraftVerify evaluation: {out['pair']}, {out['n_prompts']} held-out prompts, {cost_model}")
    for col in ("policy", "tokens/s (cost model)", "accepted length", "of oracle", "measured tokens/s"):
        table.add_column(col)
    for name, row in sorted(results.items(), key=lambda kv: -kv[1]["tokens_per_s"]):
        measured = row.get("measured_tokens_per_s")
        table.add_row(
            name,
            f"{row['tokens_per_s']:.1f}",
            f"{row['mean_accepted_length']:.2f}",
            f"{row['fraction_of_oracle']:.1%}",
            f"{measured:.1f}" if measured else "",
        )
    console.print(table)
    if "per_category" in out:
        names = ["learned", f"static_k{out['best_static_k']}", best_rule, "oracle", "target_only"]
        by_cat = Table(title="tokens/s (cost model) by category")
        for col in ("category", "n", *names, "learned / its best static k"):
            by_cat.add_column(col)
        for category, pol in out["per_category"].items():
            facts = out["categories"][category]
            by_cat.add_row(
                category,
                str(facts["n_prompts"]),
                *(f"{pol[n]['tokens_per_s']:.1f}" for n in names),
                f"{facts['learned_over_best_static']:.3f} (k={facts['best_static_k']})",
            )
        console.print(by_cat)
    departed = out["learned_departure_from_best_rule"]["all"]
    console.print(
        f"learned / best static (static_k{out['best_static_k']}): {out['learned_over_best_static']:.3f}; "
        f"/ best rule ({best_rule}): {out['learned_over_best_rule']:.3f}; departs from it in "
        + (f"{departed:.1%} of decisions" if departed is not None else "no decisions")
    )


def main(argv: list[str] | None = None) -> dict:
    env = argparse.ArgumentParser(add_help=False)
    env.add_argument("--env", default="draft-verify")
    known, _ = env.parse_known_args(argv)
    if known.env == "arbitration":
        from experiments import evaluate_arbitration

        return evaluate_arbitration.main(argv)
    options = vars(build_parser().parse_args(argv))
    options.pop("env")
    return evaluate_draft_verify(EvalSettings(**options))


if __name__ == "__main__":
    run_main(main)
