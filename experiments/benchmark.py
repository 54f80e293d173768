"""Speed benchmarks, measured as ratios within one run (machines here are shared and noisy).

python -m experiments.benchmark engine --pair NAME --k K --out FILE.json
    target-only vs SpecGym at fixed k vs transformers' assisted generation at the same k,
    interleaved over prompts and repetitions; greedy outputs must be identical.
python -m experiments.benchmark cost --pair NAME --out FILE.json
    calibrate the profiled cost model, then score its cycle-time predictions against
    measured cycles of fresh decoding (median absolute relative error).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from tqdm.auto import tqdm

from envs.specdec import SpeculativeDecoder, data_dir
from envs.specdec.cost import ProfiledCost, calibrate, device_name
from envs.specdec.state import Timer
from envs.tasks import load_prompts
from experiments.cli import add_pair_args, add_prompt_args, pair_from_args, run_main, write_json
from experiments.hf_assisted import hf_assisted_generate

console = Console()


def spread(values: list[float]) -> dict[str, float]:
    return {
        "mean": float(np.mean(values)),
        "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
        "min": float(np.min(values)),
        "max": float(np.max(values)),
    }


def interleaved(
    methods: dict[str, Callable[[list[int]], list[int]]], prompts: list[list[int]], repeats: int, device
) -> tuple[dict[str, list[float]], dict[str, list[list[int]]]]:
    """Tokens/s of each method per repetition; methods alternate per prompt, order rotating per rep."""
    names = list(methods)
    for name in names:  # warm-up: first-call allocations and lazy inits stay out of the timings
        methods[name](prompts[0])
    rates: dict[str, list[float]] = {n: [] for n in names}
    outputs: dict[str, list[list[int]]] = {n: [] for n in names}
    bar = tqdm(total=repeats * len(prompts) * len(names), desc="decoding")
    for rep in range(repeats):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        tokens = dict.fromkeys(names, 0)
        seconds = dict.fromkeys(names, 0.0)
        for prompt in prompts:
            for name in order:
                with Timer(device) as timer:
                    out = methods[name](prompt)
                tokens[name] += len(out)
                seconds[name] += timer.elapsed
                if rep == 0:
                    outputs[name].append(out)
                bar.update()
        for name in names:
            rates[name].append(tokens[name] / seconds[name])
    bar.close()
    return rates, outputs


def bench_engine(args: argparse.Namespace) -> dict:
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


def default_profile_path(pair_name: str, device: torch.device) -> Path:
    slug = "cuda-" + torch.cuda.get_device_name(device).replace(" ", "_") if device.type == "cuda" else "cpu"
    return data_dir() / "profiles" / f"{pair_name}__{slug}.json"


def bench_cost(args: argparse.Namespace) -> dict:
    pair = pair_from_args(args)
    start = time.perf_counter()
    profile = calibrate(pair, repeats=args.calibration_repeats)
    calib_s = time.perf_counter() - start
    path = profile.save(args.profile_out or default_profile_path(pair.name, pair.device))
    console.print(f"profile saved to {path} ({calib_s:.0f} s)")
    profile = ProfiledCost.load(path)  # score what was saved, as training will read it
    dec = SpeculativeDecoder(pair)
    prompts = [pair.encode(p) for p in load_prompts(args.prompts, args.n_prompts)]
    errors: dict[int, list[float]] = {}
    gen_errors: list[float] = []
    for k in tqdm(args.ks, desc="decoding"):
        for ids in prompts:
            out = dec.generate(ids, args.max_new_tokens, k=k)
            for rec in out.records:
                errors.setdefault(k, []).append(abs(profile.cycle_time(rec) - rec.time) / rec.time)
            predicted = sum(profile.cycle_time(rec) for rec in out.records)
            gen_errors.append(abs(predicted - out.decode_time) / out.decode_time)
    every = [e for errs in errors.values() for e in errs]
    result = {
        "benchmark": "cost",
        "pair": pair.name,
        "device": device_name(pair.device),
        "profile": str(path),
        "calibration_seconds": calib_s,
        "n_prompts": len(prompts),
        "ks": args.ks,
        "n_cycles": len(every),
        "cycle_median_abs_rel_error": statistics.median(every),
        "cycle_p90_abs_rel_error": float(np.quantile(every, 0.9)),
        "cycle_median_abs_rel_error_by_k": {str(k): statistics.median(v) for k, v in errors.items()},
        "generation_median_abs_rel_error": statistics.median(gen_errors),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    console.print(
        f"profiled cost model on {result['n_cycles']} cycles: median |error| "
        f"{result['cycle_median_abs_rel_error']:.1%} per cycle "
        f"(p90 {result['cycle_p90_abs_rel_error']:.1%}), "
        f"{result['generation_median_abs_rel_error']:.1%} per generation"
    )
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.benchmark",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    engine = sub.add_parser("engine", help="target-only vs SpecGym vs transformers assisted, fixed k")
    add_pair_args(engine)
    add_prompt_args(engine, n=10, max_new=64)
    engine.add_argument("--k", type=int, default=4, help="draft length (default: 4)")
    engine.add_argument("--repeats", type=int, default=3, help="interleaved repetitions (default: 3)")
    engine.add_argument("--out", help="write the results JSON here")
    engine.set_defaults(run=bench_engine)
    cost = sub.add_parser("cost", help="calibrate the profiled cost model and score its predictions")
    add_pair_args(cost)
    add_prompt_args(cost, n=5, max_new=64)
    cost.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 6, 8])
    cost.add_argument("--calibration-repeats", type=int, default=7)
    cost.add_argument("--profile-out", help="where to save the profile (default: data dir)")
    cost.add_argument("--out", help="write the results JSON here")
    cost.set_defaults(run=bench_cost)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    write_json(args.out, args.run(args))


if __name__ == "__main__":
    run_main(main)
