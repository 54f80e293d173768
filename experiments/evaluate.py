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
thresholds (``heuristic``, ``confidence``, ``specdec++``), each also with the ``expected`` size
rule (``confidence+expected`` ...; ``best_rule`` names the fastest of the six) and
``oracle_depth`` (hindsight on the depth only). Then live decoding
with the wall clock (``measured_tokens_per_s``) for ``learned``, the best static k and
``target_only``, interleaved per prompt in one run.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

from rich.table import Table
from tqdm.auto import tqdm

from agents.baselines import make_policy
from agents.policy import Composite, EpisodeStats, Policy, SB3Policy, rollout
from envs.specdec import SpecGymError, SpeculativeDecoder
from envs.specdec.cost import device_name, make_cost_model
from envs.specdec.cycles import LiveCycles
from envs.specdec.replay import TraceReplay
from envs.specdec.trace import Trace, record_trace
from envs.tasks import load_prompts
from experiments import cli
from experiments.benchmarks.common import divergences, interleaved
from experiments.cli import add_pair_args, pair_from_args, positive_int, run_main, write_json

console = cli.console()
DYNAMIC = ("heuristic", "confidence", "specdec++")


def learned_policy(path: str, verify: str | None) -> Policy:
    """A run directory (its trained depth and size policies) or a depth-policy .zip."""
    p = Path(path)
    if p.is_dir():
        results = p / "results.json"
        if not results.is_file():
            raise SpecGymError(f"{p} has no results.json; pass a finished run directory or a policy .zip")
        run = json.loads(results.read_text())
        policies = run["policies"]
        if run.get("env", "draft-verify") != "draft-verify" or not (policies.get("draft") or policies.get("verify")):
            raise SpecGymError(f"{p} holds no DraftVerify policy (a run of --env {run.get('env')}); pass a run of "
                               "--env draft-verify, or evaluate this one with --env arbitration")  # fmt: skip
        depth = SB3Policy(policies["draft"], "draft") if policies.get("draft") else make_policy("static-4")
        size = SB3Policy(policies["verify"], "verify") if policies.get("verify") else Policy()
        return Composite(depth, size, "learned")
    return Composite(SB3Policy(p, "draft"), SB3Policy(verify, "verify") if verify else Policy(), "learned")


def summarise_episodes(stats: list[EpisodeStats]) -> dict:
    tokens = sum(s.tokens for s in stats)
    return {
        "tokens_per_s": tokens / sum(s.time for s in stats),
        "mean_accepted_length": tokens / sum(s.cycles for s in stats),
        "speedup_vs_target_only": sum(s.target_time for s in stats) / sum(s.time for s in stats),
        "per_prompt_tokens_per_s": [s.tokens_per_s for s in stats],
    }


def evaluate_cost_model(source: TraceReplay, policies: dict[str, Policy]) -> dict[str, dict]:
    out = {}
    for name, policy in tqdm(policies.items(), desc="policies (cost model)"):
        out[name] = summarise_episodes([rollout(policy, source, i) for i in range(source.n_prompts)])
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


def measure_live(pair, prompts: list[list[int]], policies: dict[str, Policy], args) -> tuple[dict[str, float], list]:
    """Wall-clock tokens/s, policies and target-only interleaved per prompt; and where a policy's
    output left the target's greedy tokens (never in float32; bfloat16 ties: benchmarks.common)."""
    # the policies observe cost-model features (as in training); the clock below is the wall clock
    source = LiveCycles(pair, prompts, cost=make_cost_model(args.cost_model), width=args.width,
                        max_depth=args.max_depth, max_new_tokens=args.max_new_tokens)  # fmt: skip
    dec = SpeculativeDecoder(pair)

    def decode_with(policy: Policy):
        def go(i: int) -> list[int]:
            rollout(policy, source, i)
            return source.state.new_tokens

        return go

    methods = {name: decode_with(policy) for name, policy in policies.items()}
    methods["target_only"] = lambda i: dec.generate_target(prompts[i], args.max_new_tokens).tokens
    rates, outputs = interleaved(methods, list(range(len(prompts))), 1, pair.device)
    return {name: r[0] for name, r in rates.items()}, divergences(pair, prompts, outputs, reference="target_only")


def prompt_source(meta: dict) -> str:
    """Where a trace's prompts came from: the file or task names given, else the seeded default mix."""
    return meta.get("prompts") or f"default mix ({meta.get('split', 'heldout')})"


def run_env_kwargs(policy: str) -> dict:
    """The env kwargs a run directory's policies were trained with (cost model, tree shape, pair);
    {} for a .zip."""
    results = Path(policy) / "results.json"
    if not results.is_file():
        return {}
    return json.loads(results.read_text())["stages"][-1]["env_kwargs"]


def resolve_pair_name(args: argparse.Namespace, trained: dict) -> None:
    """``--pair`` defaults to the pair the run trained on (tiny-random for a bare .zip); another
    pair is allowed (a transfer test) and said so."""
    run_pair = trained.get("pair")
    if args.pair is None:
        args.pair = run_pair or "tiny-random"
    elif not (args.target or args.draft):
        note_other_pair(args.policy, run_pair, args.pair)


def note_other_pair(policy: str, run_pair: str | None, pair: str) -> None:
    """Say so when a run's policies are scored on a pair they were not trained on."""
    if run_pair and run_pair != pair:
        print(f"note: {policy} was trained on pair {run_pair!r}; scoring it on {pair!r} (with {pair}'s cost "
              "model unless --cost-model says otherwise)")


def check_trace_pair(path: str, meta: dict, pair: str) -> None:
    """Refuse, naming the fix, a trace (``meta`` read from ``path``) recorded for another pair than ``--pair``."""
    recorded = meta.get("pair")
    if recorded != pair:
        raise SpecGymError(f"trace {path} was recorded for pair {recorded!r}, not {pair!r}; pass "
                           f"--pair {recorded} or a trace of {pair}")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    env = argparse.ArgumentParser(add_help=False)
    env.add_argument("--env", default="draft-verify")
    known, _ = env.parse_known_args(argv)
    if known.env == "arbitration":
        from experiments import evaluate_arbitration

        evaluate_arbitration.main(argv)
        return
    p = argparse.ArgumentParser(prog="python -m experiments.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--env", default="draft-verify", choices=["draft-verify", "arbitration"],
                   help="arbitration: see python -m experiments.evaluate --env arbitration --help")
    p.add_argument("--policy", required=True, help="a run directory, or a depth-policy .zip")
    p.add_argument("--verify-policy", help="a size-policy .zip to pair with a depth-policy .zip")
    add_pair_args(p, default=None, default_help="the run's, else tiny-random")
    p.add_argument("--traces", help="held-out trace .npz to replay (default: record one for --prompts)")
    p.add_argument("--prompts", help="a .jsonl file, task:NAME or reasoning-gym task names (default: the pair's "
                   "training prompts' kind, held out: task:NAME for a task pair, else generated questions)")
    p.add_argument("--n-prompts", type=positive_int, default=None,
                   help="prompts to record (default: 20; a trace's: all)")  # fmt: skip
    p.add_argument("--max-new-tokens", type=int, default=None, help="default: the trace's, or 128 when recording")
    p.add_argument("--width", type=int, default=None, help="tree width (default: the run's, else 4)")
    p.add_argument("--max-depth", type=int, default=None, help="(default: the run's, else 8)")
    p.add_argument("--cost-model", default="auto",
                   help="auto (the run's unless measured, else train's auto) | analytic | profile .json")  # fmt: skip
    p.add_argument("--no-live", action="store_true", help="skip the wall-clock measurement")
    p.add_argument("--out", help="write the results JSON here")
    args = p.parse_args(argv)

    trained = run_env_kwargs(args.policy)
    resolve_pair_name(args, trained)
    if args.traces and not (args.target or args.draft):
        check_trace_pair(args.traces, Trace.load_meta(args.traces), args.pair)
    pair = pair_from_args(args)
    args.width = args.width or int(trained.get("width", 4))
    args.max_depth = args.max_depth or int(trained.get("max_depth", 8))
    if args.traces and (args.prompts or args.n_prompts):
        raise SpecGymError("pass --traces (a recorded trace, all its prompts scored) or --prompts/--n-prompts "
                           "(recorded here), not both")  # fmt: skip
    if args.verify_policy and Path(args.policy).is_dir():
        raise SpecGymError("a run directory brings its own size policy; pass --verify-policy with a depth-policy .zip")
    if args.cost_model == "measured":
        raise SpecGymError("the wall clock is measured separately (measured_tokens_per_s); pass --cost-model "
                           "auto, analytic or a profile .json for the replayed comparison")  # fmt: skip
    if args.cost_model == "auto":
        from experiments.training.results import default_cost_model

        # the run's cost model, unless it trained on the wall clock or on another pair (whose profile it is)
        run_cost = trained.get("cost_model") if trained.get("pair", pair.name) == pair.name else None
        args.cost_model = run_cost if run_cost not in (None, "measured") else default_cost_model(pair.name, args.device)
    cost = make_cost_model(args.cost_model)
    if args.traces:
        trace: Trace | str = args.traces
    else:
        from experiments.training.results import trace_source

        args.prompts = args.prompts or trace_source(pair.name)  # a task pair's own questions, as train's
        prompts = [pair.encode(t) for t in load_prompts(args.prompts, args.n_prompts or 20)]
        trace = record_trace(pair, prompts, max_new_tokens=args.max_new_tokens or 128, width=args.width,
                             max_depth=args.max_depth, meta={"prompts": args.prompts})  # fmt: skip
    source = TraceReplay(trace, cost=cost, width=args.width, max_depth=args.max_depth,
                         max_new_tokens=args.max_new_tokens)  # fmt: skip
    prompts = [source.trace.prompt(i).prompt.tolist() for i in range(source.n_prompts)]
    args.max_new_tokens = source.max_new_tokens
    learned = learned_policy(args.policy, args.verify_policy)
    policies: dict[str, Policy] = {"learned": learned, "oracle": make_policy("oracle", source=source)}
    policies |= {f"static_k{k}": make_policy(f"static-{k}") for k in range(1, args.max_depth + 1)}
    policies |= {name: make_policy(name) for name in DYNAMIC}
    # each rule also with the expected size rule picking the verified nodes (EAGLE-2 style)
    policies |= {f"{name}+expected": make_policy(f"{name}+expected") for name in DYNAMIC}
    policies["oracle_depth"] = make_policy("oracle-depth", source=source)
    results = evaluate_cost_model(source, policies)
    statics = [f"static_k{k}" for k in range(1, args.max_depth + 1)]
    best_static = max(statics, key=lambda n: results[n]["tokens_per_s"])
    rules = [*DYNAMIC, *(f"{name}+expected" for name in DYNAMIC)]
    best_rule = max(rules, key=lambda n: results[n]["tokens_per_s"])
    if not args.no_live:
        live, diverged = measure_live(pair, prompts, {"learned": learned, best_static: policies[best_static]}, args)
        for name, rate in live.items():
            results[name]["measured_tokens_per_s"] = rate
    out = {
        "benchmark": "evaluate-draft-verify",
        "env": args.env,
        "pair": pair.name,
        "device": device_name(pair.device),
        "dtype": pair.dtype_name,
        "cost_model": args.cost_model,
        "backend": "replay",
        "traces": args.traces or "recorded for the prompts",
        "prompts": prompt_source(source.trace.meta),
        "n_prompts": len(prompts),
        "width": args.width,
        "max_depth": args.max_depth,
        "best_static_k": int(best_static.removeprefix("static_k")),
        "learned_over_best_static": results["learned"]["tokens_per_s"] / results[best_static]["tokens_per_s"],
        "best_rule": best_rule,
        "learned_over_best_rule": results["learned"]["tokens_per_s"] / results[best_rule]["tokens_per_s"],
        "policies": results,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if not args.no_live:
        out["measured_identical_outputs"] = not diverged
        out["measured_divergences"] = diverged
        out["measured_learned_over_best_static"] = (
            results["learned"]["measured_tokens_per_s"] / results[best_static]["measured_tokens_per_s"]
        )
    table = Table(title=f"DraftVerify evaluation: {pair.name}, {len(prompts)} held-out prompts, {args.cost_model}")
    for col in ("policy", "tokens/s (cost model)", "accepted length", "of oracle", "measured tokens/s"):
        table.add_column(col)
    for name, row in sorted(results.items(), key=lambda kv: -kv[1]["tokens_per_s"]):
        measured = row.get("measured_tokens_per_s")
        table.add_row(name, f"{row['tokens_per_s']:.1f}", f"{row['mean_accepted_length']:.2f}",
                      f"{row['fraction_of_oracle']:.1%}", f"{measured:.1f}" if measured else "")  # fmt: skip
    console.print(table)
    console.print(f"learned / best static ({best_static}): {out['learned_over_best_static']:.3f}; "
                  f"/ best rule ({best_rule}): {out['learned_over_best_rule']:.3f}")
    write_json(args.out, out)


if __name__ == "__main__":
    run_main(main)
