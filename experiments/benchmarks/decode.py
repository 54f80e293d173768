"""``decode``: end-to-end tokens/s of every way to decode the same prompts, interleaved in one run.

Target-only, transformers' assisted generation (fixed k, and its dynamic default), SpecGym at
each static k, and learned DraftVerify policies (``--policy RUN_DIR``, decoding live with the
cost model they were trained on for their observations; the clock is the wall clock). Greedy
throughout, so every method must return the target's tokens (``identical_outputs``). Writes the
JSON and, beside it, a markdown table.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from rich.table import Table

from envs.specdec import SpeculativeDecoder
from envs.specdec.cost import device_name, make_cost_model
from envs.specdec.cycles import LiveCycles
from envs.tasks import load_prompts
from experiments import cli
from experiments.benchmarks.common import divergences, interleaved, spread
from experiments.cli import add_pair_args, add_prompt_args, pair_from_args
from experiments.hf_assisted import hf_assisted_generate

console = cli.console()


def add_parser(sub: argparse._SubParsersAction) -> None:
    decode = sub.add_parser("decode", help="tokens/s of target-only, HF assisted, static k and learned policies")
    add_pair_args(decode)
    add_prompt_args(decode, n=10, max_new=64)
    decode.add_argument("--ks", type=int, nargs="+", default=[1, 2, 3, 4, 6], help="SpecGym static k values")
    decode.add_argument("--hf-k", type=int, default=4, help="transformers' fixed draft length (default: 4)")
    decode.add_argument("--policy", action="append", default=[], help="a DraftVerify run directory (repeatable)")
    decode.add_argument("--repeats", type=int, default=3, help="interleaved repetitions (default: 3)")
    decode.add_argument("--out", help="write the results JSON here (and a .md table beside it)")
    decode.set_defaults(run=run)


def learned_method(pair, prompts: list[list[int]], run_dir: str, max_new: int):
    """Live decoding with a run's co-adaptive policies, on its training tree shape and cost model."""
    from envs.specdec.schedules import rollout
    from experiments.runs import cost_features, learned_policy, run_env_kwargs

    kwargs = run_env_kwargs(run_dir)
    policy = learned_policy(run_dir, None)
    width, max_depth = int(kwargs.get("width", 4)), int(kwargs.get("max_depth", 8))
    source = LiveCycles(
        pair,
        prompts,
        cost=make_cost_model(kwargs.get("cost_model", "analytic")),
        width=width,
        max_depth=max_depth,
        max_new_tokens=max_new,
        cost_features=cost_features(policy, max_depth, width),
    )
    index = {id(p): i for i, p in enumerate(prompts)}  # the timing loop passes these very lists

    def go(ids: list[int]) -> list[int]:
        rollout(policy, source, index[id(ids)])
        return source.state.new_tokens

    return go


def run(args: argparse.Namespace) -> dict:
    pair = pair_from_args(args)
    dec = SpeculativeDecoder(pair)
    prompts = [pair.encode(p) for p in load_prompts(args.prompts, args.n_prompts)]
    n = args.max_new_tokens
    methods = {
        "target_only": lambda ids: dec.generate_target(ids, n).tokens,
        f"hf_assisted_k{args.hf_k}": lambda ids: hf_assisted_generate(pair, ids, n, args.hf_k),
        "hf_assisted_dynamic": lambda ids: hf_assisted_generate(pair, ids, n, None),
    }
    for k in args.ks:
        methods[f"specgym_k{k}"] = lambda ids, k=k: dec.generate(ids, n, k=k).tokens
    for i, run_dir in enumerate(args.policy):
        methods[f"learned{i or ''}"] = learned_method(pair, prompts, run_dir, n)
    rates, outputs = interleaved(methods, prompts, args.repeats, pair.device)
    base = np.mean(rates["target_only"])
    statics = [f"specgym_k{k}" for k in args.ks]
    best = max(statics, key=lambda m: np.mean(rates[m]))
    result = {
        "benchmark": "decode",
        "pair": pair.name,
        "device": device_name(pair.device),
        "dtype": pair.dtype_name,
        "prompts": args.prompts or "held-out reasoning-gym mix",
        "n_prompts": len(prompts),
        "max_new_tokens": n,
        "repeats": args.repeats,
        "policies": args.policy,
        "methods": {
            name: {"tokens_per_s": spread(r), "speedup_vs_target_only": float(np.mean(r) / base)}
            for name, r in rates.items()
        },
        "best_static": best,
        "identical_outputs": all(out == outputs["target_only"] for out in outputs.values()),
        "divergences": divergences(pair, prompts, outputs, reference="target_only"),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    title = f"decode benchmark: {pair.name}, {len(prompts)} prompts x {n} tokens, {args.repeats} repeats"
    table = Table(title=f"{title}, {result['device']}")
    lines = [f"# {title}, {result['device']}", "", "| method | tokens/s (mean ± sd) | vs target-only |"]
    lines.append("|---|---|---|")
    for col in ("method", "tokens/s (mean ± sd over repeats)", "vs target-only"):
        table.add_column(col)
    for name, row in sorted(result["methods"].items(), key=lambda kv: -kv[1]["speedup_vs_target_only"]):
        cells = [
            name,
            f"{row['tokens_per_s']['mean']:.1f} ± {row['tokens_per_s']['std']:.1f}",
            f"{row['speedup_vs_target_only']:.2f}x",
        ]
        table.add_row(*cells)
        lines.append("| " + " | ".join(cells) + " |")
    console.print(table)
    console.print(f"identical outputs: {result['identical_outputs']}; best static: {best}")
    if args.out:
        Path(args.out).with_suffix(".md").parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).with_suffix(".md").write_text("\n".join(lines) + "\n")
    return result
