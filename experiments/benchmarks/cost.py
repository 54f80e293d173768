"""``cost``: calibrate the profiled cost model, then score its cycle-time predictions against
measured cycles of fresh decoding (median absolute relative error). With ``--workers``, one
profile per kind of device among the Ray workers."""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from envs.pairs import data_dir
from envs.specdec import SpecGymError, SpeculativeDecoder
from envs.specdec.cost import ProfiledCost, calibrate, device_name
from envs.specdec.pair import ModelPair
from envs.tasks import load_prompts
from experiments import cli
from experiments.artifacts import default_profile_path
from experiments.cli import add_pair_args, add_prompt_args, pair_args, pair_from_args
from experiments.workers import add_worker_args, check_workers, open_pool

console = cli.console()


def add_parser(sub: argparse._SubParsersAction) -> None:
    cost = sub.add_parser("cost", help="calibrate the profiled cost model and score its predictions")
    add_pair_args(cost)
    add_prompt_args(cost, n=5, max_new=64)
    cost.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 6, 8])
    cost.add_argument("--calibration-repeats", type=int, default=7)
    cost.add_argument("--profile-out", help="where to save the profile (default: data dir)")
    cost.add_argument("--out", help="write the results JSON here")
    add_worker_args(cost)
    cost.set_defaults(run=run)


def run(args: argparse.Namespace) -> dict:
    """Without --workers: calibrate and score on this machine. With --workers: one profile per kind
    of device among the workers (never one profile from two kinds), each calibrated and scored on
    one worker of that kind, the kinds at once; profiles land in this machine's data directory."""
    check_workers(args.workers, args.ray_address, args.device)
    texts = load_prompts(args.prompts, args.n_prompts)
    work = functools.partial(
        calibrate_and_score, repeats=args.calibration_repeats, texts=texts, ks=args.ks, max_new=args.max_new_tokens
    )
    with open_pool(
        functools.partial(pair_from_args, pair_args(args)),
        workers=args.workers,
        address=args.ray_address,
        threads=args.threads,
        device=args.device,
    ) as pool:
        kinds = pool.each(profile_name)  # the profile file each worker's device and dtype would have
        first = {name: kinds.index(name) for name in dict.fromkeys(kinds)}  # one worker per kind
        if args.profile_out and len(first) > 1:
            raise SpecGymError(
                f"the workers have {len(first)} kinds of device ({', '.join(first)}), one profile each: "
                "leave out --profile-out (they go to the data directory's profiles/)"
            )
        done = pool.each(work, only=list(first.values()))
    results = []
    for name, (profile, result) in zip(first, done, strict=True):
        path = profile.save(args.profile_out or data_dir() / "profiles" / name)
        result["profile"] = str(path)
        console.print(f"profile saved to {path} ({result['calibration_seconds']:.0f} s)")
        console.print(
            f"profiled cost model on {result['n_cycles']} cycles ({result['device']}): median |error| "
            f"{result['cycle_median_abs_rel_error']:.1%} per cycle "
            f"(p90 {result['cycle_p90_abs_rel_error']:.1%}), "
            f"{result['generation_median_abs_rel_error']:.1%} per generation"
        )
        results.append(result)
    if len(results) == 1:
        return results[0]
    return {"benchmark": "cost", "devices": results, "date": results[0]["date"]}


def profile_name(pair: ModelPair) -> str:
    """The file name of this worker's profile: the pair, the kind of device, the dtype."""
    return default_profile_path(pair.name, pair.device, pair.target.dtype).name


def calibrate_and_score(
    pair: ModelPair, *, repeats: int, texts: list[str], ks: list[int], max_new: int
) -> tuple[ProfiledCost, dict]:
    """Calibrate the profile on ``pair``'s device, then score its cycle-time predictions against
    measured cycles of fresh decoding; the profile and the results."""
    start = time.perf_counter()
    profile = calibrate(pair, repeats=repeats)
    calib_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:  # score what a save gives back, as training will read it
        profile = ProfiledCost.load(profile.save(Path(tmp) / "profile.json"))
    dec = SpeculativeDecoder(pair)
    prompts = [pair.encode(p) for p in texts]
    errors: dict[int, list[float]] = {}
    gen_errors: list[float] = []
    for k in tqdm(ks, desc="decoding"):
        for ids in prompts:
            out = dec.generate(ids, max_new, k=k)
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
        "calibration_seconds": calib_s,
        "n_prompts": len(prompts),
        "ks": ks,
        "n_cycles": len(every),
        "cycle_median_abs_rel_error": statistics.median(every),
        "cycle_p90_abs_rel_error": float(np.quantile(every, 0.9)),
        "cycle_median_abs_rel_error_by_k": {str(k): statistics.median(v) for k, v in errors.items()},
        "generation_median_abs_rel_error": statistics.median(gen_errors),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return profile, result
