"""``transfer``: does one DraftVerify policy, trained under a cost-profile family, serve every device?

    python -m experiments.benchmark transfer --pair smollm2-135m --out F.json \\
        [--family mixed] [--timesteps N] [--family-timesteps N] [--seeds 0 ...] \\
        [--test-profile NAME=PROFILE.json ...]

Trains, with ``python -m experiments.train``'s co-adaptive DraftVerify training on the pair's
train trace (replay), one *randomised* policy pair under ``--family`` (its cost model drawn per
episode; ``envs/specdec/cost_family.py``) and, for every test profile, a *specialist* pair under
that profile alone; both observe the cost profile's shape (``cost_features="profile"``). Then, on
the held-out trace replayed under each test profile, scores:

- ``randomized`` and ``specialist``;
- ``best_static``: the best static k on the held-out trace itself (hindsight: the strongest
  static baseline);
- ``best_rule``: of the rule pairs ``confidence+expected`` and ``specdec++ +expected``, each with
  its threshold tuned on the *train* trace under the same profile, and ``expected-depth+expected``
  (cost-aware, nothing to tune), the one fastest on the train trace (``rules`` holds all three);
- ``oracle``: the best schedule for the trace in hindsight (the fractions' denominator).

Test profiles: ``cpu-calibrated`` (the pair's profile on this device: the family's calibrated
member), ``gpu-nominal`` (:class:`~envs.specdec.cost_family.GpuShapedCost` at its defaults,
inside the ``gpu`` family's ranges), two GPU shapes outside every range the families draw from
(``gpu-unseen-early-knee``: a draft at 0.5% of a step, verification rising from 8 tokens on;
``gpu-unseen-slow-draft``: a draft at 30% of a step, verification flat to 128 tokens), and any
``--test-profile NAME=PATH`` (e.g. a float32 or a GPU profile from ``benchmark cost``; counted as
unseen). Every analytic profile is saved as a profile .json beside the results (``F_profiles/``),
which is what the specialists train on (calibrated ones train from their own files).
``--randomized-runs`` scores finished runs as the randomised policy instead of training it.

Results: ``policies[profile][policy]`` with ``tokens_per_s`` (mean over seeds for the learned
ones, ``per_seed`` beside it) and ``fraction_of_oracle``; per profile and as the minimum over the
profiles: ``randomized_over_specialist``, ``randomized_over_best_static``,
``randomized_over_best_rule`` and ``specialist_over_best_rule``; the device, traces, seeds and
steps. A plot (fraction of the oracle by profile and policy) is saved beside the JSON.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from rich.table import Table

from envs.partners import make_policy
from envs.specdec.cost import CostModel, ProfiledCost, make_cost_model
from envs.specdec.cost_family import FAMILIES, GpuShapedCost, check_family_name, describe, to_profile
from envs.specdec.errors import SpecGymError
from envs.specdec.replay import TraceReplay
from envs.specdec.schedules import tokens_per_s
from envs.specdec.trace import Trace
from experiments import cli, plots
from experiments.benchmarks.headroom import RULES, tune_rule
from experiments.cli import positive_int

console = cli.console()
POLICIES = ("randomized", "specialist", "best_static", "best_rule", "oracle")
RATIOS = {  # result key: (numerator, denominator) policies
    "randomized_over_specialist": ("randomized", "specialist"),
    "randomized_over_best_static": ("randomized", "best_static"),
    "randomized_over_best_rule": ("randomized", "best_rule"),
    "specialist_over_best_rule": ("specialist", "best_rule"),
}
# GPU shapes outside every range the families draw from (gpu-perturbed reaches draft ratios of
# 0.01-0.2 and keeps the knee at 16-64 tokens): what a policy never saw in training
UNSEEN_GPU = {
    "gpu-unseen-early-knee": (
        GpuShapedCost(draft_ratio=0.005, knee=8.0, rise=1.0, flat_slope=0.0, context_slope=0.04),
        "draft at 0.5% of a target step (training: 1-20%), verification rising from 8 tokens (training: 16-64)",
    ),
    "gpu-unseen-slow-draft": (
        GpuShapedCost(draft_ratio=0.3, knee=128.0, rise=1.0, flat_slope=0.001, context_slope=0.15),
        "draft at 30% of a target step (training: 1-20%), verification flat to 128 tokens (training: 16-64), "
        "15% per 1000 tokens of context (training: 1-10%)",
    ),
}


@dataclass
class TestProfile:
    name: str
    cost: CostModel
    unseen: bool
    note: str
    path: str = ""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("transfer", help="one policy trained under a cost family against per-profile specialists")
    p.add_argument("--pair", default="smollm2-135m")
    p.add_argument("--traces", help="held-out trace .npz (default: the pair's, recorded on first use)")
    p.add_argument("--train-traces", help="training trace .npz (default: the pair's train one)")
    p.add_argument("--width", type=int, default=4)
    p.add_argument("--max-depth", type=int, default=8)
    p.add_argument("--cost-model", default="auto", help="the calibrated profile: auto (as train's) | analytic | .json")
    p.add_argument("--family", default="mixed", help=f"the randomised policy's cost family: {' | '.join(FAMILIES)}")
    p.add_argument(
        "--test-profile",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="another test profile (a profile .json, e.g. float32 or GPU from benchmark cost); repeatable",
    )
    p.add_argument("--timesteps", type=positive_int, default=30_000, help="specialists: timesteps per role per round")
    p.add_argument(
        "--family-timesteps",
        type=positive_int,
        help="the randomised policy: timesteps per role per round (default: --timesteps)",
    )
    p.add_argument("--rounds", type=positive_int, default=2, help="co-adaptive rounds (default 2)")
    p.add_argument("--config", help="hyperparameter YAML for every training (default: train's)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="one randomised and one specialist per seed")
    p.add_argument(
        "--randomized-runs",
        nargs="+",
        metavar="RUN_DIR",
        help="score these finished training runs (one per seed, trained under --family with --cost-features "
        "profile) as the randomised policy instead of training it",
    )
    p.add_argument("--runs-dir", default="runs/transfer", help="where the training runs go")
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("--out", help="write the results JSON here (the plot and the profiles beside it)")
    p.set_defaults(run=run)


def parse_extra(specs: list[str]) -> dict[str, str]:
    """``NAME=PATH`` pairs of ``--test-profile``."""
    out = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path.endswith(".json"):
            raise SpecGymError(f"--test-profile {spec!r}: pass NAME=PATH.json (a profile from benchmark cost)")
        out[name] = path
    return out


def test_profiles(base_path: str, extra: dict[str, str]) -> list[TestProfile]:
    """The default test profiles (module docstring) and ``extra`` ones; a profile .json is used as it is."""
    base = make_cost_model(base_path)
    calibrated = base_path if base_path.endswith(".json") else ""
    profiles = [
        TestProfile(
            "cpu-calibrated", base, False, "the pair's calibrated profile (the family's calibrated member)", calibrated
        ),
        TestProfile("gpu-nominal", GpuShapedCost(), False, "GPU shape at the gpu family's central values"),
    ]
    profiles += [TestProfile(name, cost, True, note) for name, (cost, note) in UNSEEN_GPU.items()]
    for name, path in extra.items():
        profile = ProfiledCost.load(path)
        what = ", ".join(str(profile.meta.get(k)) for k in ("device", "dtype") if profile.meta.get(k))
        profiles.append(
            TestProfile(name, profile, True, f"calibrated profile {path} ({what}); no training saw it", path)
        )
    return profiles


def save_profiles(profiles: list[TestProfile], directory: Path, trace: Trace, width: int, max_depth: int) -> None:
    """Every test profile as a profile .json (exact at every size the env asks for), for the specialists."""
    directory.mkdir(parents=True, exist_ok=True)
    max_context = int(trace.meta["max_context"])
    for p in profiles:
        if p.path:  # a calibrated profile's own file (its spreads are its noise allowance)
            continue
        # the analytic shapes are linear in context: exact between any two points
        table = to_profile(
            p.cost,
            sorted({1, 256, max_context}),
            sorted({1, 2, width}),
            list(range(1, max_depth * width + 2)),
            {"test_profile": p.name, "note": p.note},
        )
        p.path = str(table.save(directory / f"{p.name}.json"))


def train_pair(args: argparse.Namespace, traces: str, seed: int, extra: list[str], exp: str, steps: int) -> str:
    """One co-adaptive DraftVerify training run (``python -m experiments.train``, in a process of its
    own: experiments.train imports the benchmarks' helpers); its run directory."""
    argv = [
        "--env",
        "draft-verify",
        "--pair",
        args.pair,
        "--traces",
        traces,
        "--eval-traces",
        args.traces,
        "--timesteps",
        str(steps),
        "--rounds",
        str(args.rounds),
        "--seeds",
        str(seed),
        "--runs-dir",
        args.runs_dir,
        "--exp",
        exp,
        "--threads",
        str(args.threads),
        "--cost-features",
        "profile",
        "--wandb-mode",
        "disabled",
        "--no-progress",
        *(["--config", args.config] if args.config else []),
        *extra,
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.train", *argv], stdout=subprocess.PIPE, text=True, check=False
    )
    print(proc.stdout, end="")
    found = re.findall(r"^run directory: (.+)$", proc.stdout, flags=re.MULTILINE)
    if proc.returncode != 0 or not found:
        raise SpecGymError(f"training {exp} (seed {seed}) failed with exit code {proc.returncode}; its error is above")
    return found[-1]


def score_profile(
    p: TestProfile, heldout: Trace, train: Trace, args: argparse.Namespace, learned: dict[str, list]
) -> tuple[dict[str, dict], dict[str, dict]]:
    """Every policy's tokens/s and fraction of the oracle on the held-out trace under ``p``; and
    both tuned rule pairs'."""
    cost = make_cost_model(p.path)
    shape = {"width": args.width, "max_depth": args.max_depth, "cost_features": "profile"}
    source, train_source = (TraceReplay(t, cost=cost, **shape) for t in (heldout, train))
    rows: dict[str, dict] = {"oracle": {"tokens_per_s": tokens_per_s(make_policy("oracle", source=source), source)}}
    for name, policies in learned.items():
        rates = [tokens_per_s(policy, source) for policy in policies]
        rows[name] = {"tokens_per_s": statistics.fmean(rates), "per_seed": rates}
    statics = {k: tokens_per_s(make_policy(f"static-{k}"), source) for k in range(1, args.max_depth + 1)}
    k = max(statics, key=statics.get)
    rows["best_static"] = {"k": k, "tokens_per_s": statics[k]}
    rules = {f"{rule}+expected": tune_rule(rule, train_source, source, "+expected") for rule in RULES}
    cost_aware = make_policy("expected-depth+expected")
    rules["expected-depth+expected"] = {
        "threshold": None,
        "train_tokens_per_s": tokens_per_s(cost_aware, train_source),
        "tokens_per_s": tokens_per_s(cost_aware, source),
    }
    best = max(rules, key=lambda name: rules[name]["train_tokens_per_s"])  # chosen on the train trace
    rows["best_rule"] = {"rule": best, **rules[best]}
    for row in [*rows.values(), *rules.values()]:
        row["fraction_of_oracle"] = row["tokens_per_s"] / rows["oracle"]["tokens_per_s"]
    return rows, rules


def run(args: argparse.Namespace) -> dict:
    from experiments.artifacts import default_cost_model, default_traces
    from experiments.runs import learned_policy

    check_family_name(args.family)
    extra = parse_extra(args.test_profile)
    args.traces = args.traces or str(default_traces(args.pair, "heldout", args.width, args.max_depth))
    args.train_traces = args.train_traces or str(default_traces(args.pair, "train", args.width, args.max_depth))
    base_path = default_cost_model(args.pair) if args.cost_model == "auto" else args.cost_model
    heldout, train = Trace.load(args.traces), Trace.load(args.train_traces)
    profiles = test_profiles(base_path, extra)
    out = Path(args.out) if args.out else Path(args.runs_dir) / "transfer.json"
    save_profiles(profiles, out.with_name(out.stem + "_profiles"), heldout, args.width, args.max_depth)
    family_steps = args.family_timesteps or args.timesteps
    start = time.perf_counter()
    runs: dict[str, list[str]] = {"randomized": []}
    if args.randomized_runs and len(args.randomized_runs) != len(args.seeds):
        raise SpecGymError(f"--randomized-runs: pass one run directory per seed ({len(args.seeds)})")
    for i, seed in enumerate(args.seeds):
        family = ["--cost-model", base_path, "--cost-family", args.family]
        if args.randomized_runs:
            runs["randomized"].append(args.randomized_runs[i])
        else:
            run_dir = train_pair(args, args.train_traces, seed, family, f"transfer-{args.family}", family_steps)
            runs["randomized"].append(run_dir)
        for p in profiles:
            specialist = ["--cost-model", p.path]
            runs.setdefault(p.name, []).append(
                train_pair(args, args.train_traces, seed, specialist, f"transfer-{p.name}", args.timesteps)
            )
    train_seconds = time.perf_counter() - start
    randomized = [learned_policy(d, None) for d in runs["randomized"]]
    policies, rules = {}, {}
    for p in profiles:
        learned = {"randomized": randomized, "specialist": [learned_policy(d, None) for d in runs[p.name]]}
        policies[p.name], rules[p.name] = score_profile(p, heldout, train, args, learned)
    info = heldout.meta.get("pair_info", {})
    base = profiles[0].cost
    result = {
        "benchmark": "transfer",
        "pair": args.pair,
        # where the calibrated profile was measured (the traces do not depend on the device)
        "device": base.meta.get("device") if isinstance(base, ProfiledCost) else info.get("device"),
        "dtype": info.get("dtype"),
        "calibrated_profile": base_path,
        "traces": args.traces,
        "train_traces": args.train_traces,
        "n_prompts": heldout.n_prompts,
        "n_train_prompts": train.n_prompts,
        "width": args.width,
        "max_depth": args.max_depth,
        "family": args.family,
        "seeds": args.seeds,
        "rounds": args.rounds,
        "timesteps_per_stage": {"randomized": family_steps, "specialist": args.timesteps},
        "train_seconds": train_seconds,  # the runs trained here (not --randomized-runs)
        "randomized_runs_given": bool(args.randomized_runs),
        "runs": runs,
        "profiles": {
            p.name: {"unseen": p.unseen, "note": p.note, "path": p.path, "source": describe(p.cost)} for p in profiles
        },
        "policies": policies,
        "rules": rules,
    }
    for key, (a, b) in RATIOS.items():
        result[key] = {name: rows[a]["tokens_per_s"] / rows[b]["tokens_per_s"] for name, rows in policies.items()}
        result[f"{key}_min"] = min(result[key].values())
    result["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result["plot"] = str(plots.transfer_matrix(result, out.with_suffix(".png")))
    print_table(result)
    return result


def print_table(result: dict) -> None:
    table = Table(title=f"DraftVerify transfer: {result['pair']}, {result['n_prompts']} held-out prompts")
    table.add_column("profile")
    for name in POLICIES:
        table.add_column(name)
    for col in ("rand/spec", "rand/static", "rand/rule"):
        table.add_column(col)
    for profile, rows in result["policies"].items():
        unseen = " (unseen)" if result["profiles"][profile]["unseen"] else ""
        cells = [f"{rows[n]['tokens_per_s']:.1f} ({rows[n]['fraction_of_oracle']:.0%})" for n in POLICIES]
        ratio = [
            f"{result[k][profile]:.3f}"
            for k in ("randomized_over_specialist", "randomized_over_best_static", "randomized_over_best_rule")
        ]
        table.add_row(profile + unseen, *cells, *ratio)
    console.print(table)
    console.print(
        f"randomised / specialist, min over profiles: {result['randomized_over_specialist_min']:.3f}; "
        f"/ best static k: {result['randomized_over_best_static_min']:.3f}; "
        f"/ best tuned rule pair: {result['randomized_over_best_rule_min']:.3f}"
    )
