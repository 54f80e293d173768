"""``cost``: calibrate the profiled cost model, then score its cycle-time predictions against
measured cycles of fresh decoding (median absolute relative error)."""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime, timezone

import numpy as np
from tqdm.auto import tqdm

from envs.specdec import SpeculativeDecoder
from envs.specdec.cost import ProfiledCost, calibrate, device_name
from envs.tasks import load_prompts
from experiments import cli
from experiments.artifacts import default_profile_path
from experiments.cli import add_pair_args, add_prompt_args, pair_from_args

console = cli.console()


def add_parser(sub: argparse._SubParsersAction) -> None:
    cost = sub.add_parser("cost", help="calibrate the profiled cost model and score its predictions")
    add_pair_args(cost)
    add_prompt_args(cost, n=5, max_new=64)
    cost.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 6, 8])
    cost.add_argument("--calibration-repeats", type=int, default=7)
    cost.add_argument("--profile-out", help="where to save the profile (default: data dir)")
    cost.add_argument("--out", help="write the results JSON here")
    cost.set_defaults(run=run)


def run(args: argparse.Namespace) -> dict:
    pair = pair_from_args(args)
    start = time.perf_counter()
    profile = calibrate(pair, repeats=args.calibration_repeats)
    calib_s = time.perf_counter() - start
    path = profile.save(args.profile_out or default_profile_path(pair.name, pair.device, pair.target.dtype))
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
        "dtype": pair.dtype_name,
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
