"""``engine``: target-only vs SpecGym at fixed k vs transformers' assisted generation at the same k,
interleaved over prompts and repetitions in one run; greedy outputs must be identical."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone

import numpy as np
from rich.table import Table

from envs.specdec import SpeculativeDecoder
from envs.specdec.cost import device_name
from envs.tasks import load_prompts
from experiments import cli
from experiments.benchmarks.common import divergences, interleaved, spread
from experiments.cli import add_pair_args, add_prompt_args, pair_from_args
from experiments.hf_assisted import hf_assisted_generate

console = cli.console()


def add_parser(sub: argparse._SubParsersAction) -> None:
    engine = sub.add_parser("engine", help="target-only vs SpecGym vs transformers assisted, fixed k")
    add_pair_args(engine)
    add_prompt_args(engine, n=10, max_new=64)
    engine.add_argument("--k", type=int, default=4, help="draft length (default: 4)")
    engine.add_argument("--repeats", type=int, default=3, help="interleaved repetitions (default: 3)")
    engine.add_argument("--out", help="write the results JSON here")
    engine.set_defaults(run=run)


def run(args: argparse.Namespace) -> dict:
    pair = pair_from_args(args)
    dec = SpeculativeDecoder(pair)
    prompts = [pair.encode(p) for p in load_prompts(args.prompts, args.n_prompts)]
    n, k = args.max_new_tokens, args.k
    accepted: list[float] = []

    def specgym(ids: list[int]) -> list[int]:
        result = dec.generate(ids, n, k=k)
        accepted.append(result.mean_accepted_length)
        return result.tokens

    methods = {
        "target_ar": lambda ids: dec.generate_target(ids, n).tokens,
        "specgym": specgym,
        "hf_assisted": lambda ids: hf_assisted_generate(pair, ids, n, k),
    }
    rates, outputs = interleaved(methods, prompts, args.repeats, pair.device)
    identical = outputs["specgym"] == outputs["target_ar"] == outputs["hf_assisted"]
    ratio_hf = [s / h for s, h in zip(rates["specgym"], rates["hf_assisted"], strict=True)]
    ratio_ar = [s / t for s, t in zip(rates["specgym"], rates["target_ar"], strict=True)]
    result = {
        "benchmark": "engine",
        "pair": pair.name,
        "pair_info": pair.describe(),
        "device": device_name(pair.device),
        "dtype": pair.dtype_name,
        "k": k,
        "repeats": args.repeats,
        "n_prompts": len(prompts),
        "max_new_tokens": n,
        "prompts": args.prompts or "held-out reasoning-gym mix",
        "target_ar_tokens_per_s": float(np.mean(rates["target_ar"])),
        "specgym_tokens_per_s": float(np.mean(rates["specgym"])),
        "hf_assisted_tokens_per_s": float(np.mean(rates["hf_assisted"])),
        "tokens_per_s": {name: spread(r) for name, r in rates.items()},
        "specgym_over_hf_assisted": spread(ratio_hf),
        "specgym_over_target_ar": spread(ratio_ar),
        "mean_accepted_length": float(np.mean(accepted)),
        "identical_outputs": bool(identical),
        "divergences": divergences(pair, prompts, outputs, reference="target_ar"),
        "generated_tokens": sum(len(o) for o in outputs["target_ar"]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    table = Table(title=f"engine benchmark: {pair.name}, k={k}, {result['device']}")
    for col in ("method", "tokens/s (mean ± sd over repeats)", "vs target-only"):
        table.add_column(col)
    for name in methods:
        s, ratio = result["tokens_per_s"][name], np.mean(rates[name]) / np.mean(rates["target_ar"])
        table.add_row(name, f"{s['mean']:.1f} ± {s['std']:.1f}", f"{ratio:.2f}x")
    console.print(table)
    r = result["specgym_over_hf_assisted"]
    console.print(
        f"specgym / hf_assisted: {r['mean']:.3f} (min {r['min']:.3f} over {args.repeats} repeats); "
        f"identical outputs: {identical}; mean accepted length {result['mean_accepted_length']:.2f}"
    )
    return result
