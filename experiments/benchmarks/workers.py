"""``workers``: trace recording in one process against ``--workers N`` Ray actors, wall clock from
the command's start (imports, model loading and Ray's start-up included), 1 torch thread per
process, and whether the two traces are the same arrays byte for byte."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from envs.specdec import SpecGymError
from envs.specdec.cost import device_name
from envs.specdec.pair import resolve_device
from envs.specdec.trace import ARRAYS
from experiments import cli
from experiments.artifacts import trace_source
from experiments.cli import positive_int
from experiments.workers import add_worker_args, check_workers

console = cli.console()
ROOT = Path(__file__).resolve().parents[2]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("workers", help="trace recording: one process against --workers Ray actors, and equality")
    p.add_argument("--pair", default="gsm", help="registered pair name (default: gsm)")
    p.add_argument("--prompts", help="prompt source (default: the pair's own, as train records)")
    p.add_argument("--n-prompts", type=positive_int, default=240)
    p.add_argument("--max-new-tokens", type=positive_int, default=128)
    p.add_argument("--width", type=positive_int, default=4, help="tree width (default: 4, as train records)")
    p.add_argument("--max-depth", type=positive_int, default=8)
    p.add_argument("--threads", type=positive_int, default=1, help="torch threads per process (default: 1)")
    p.add_argument("--device", default="auto")
    add_worker_args(p)
    p.add_argument("--out", help="write the results JSON here")
    p.set_defaults(run=run, workers=2)


def differing_arrays(a: Path, b: Path) -> list[str]:
    """The trace arrays that differ between two saved traces (dtype, shape or any byte)."""
    with np.load(a) as x, np.load(b) as y:
        return [n for n in ARRAYS if x[n].dtype != y[n].dtype or x[n].tobytes() != y[n].tobytes()]


def timed_record(argv: list[str]) -> float:
    """Wall seconds of ``python -m experiments.record_traces ARGV`` from process start to exit."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "experiments.record_traces", *argv], env=env, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SpecGymError(f"the recording {' '.join(argv)} failed (exit {proc.returncode}); see its output above")
    return seconds


def run(args: argparse.Namespace) -> dict:
    check_workers(args.workers, args.ray_address, args.device)
    torch.set_num_threads(args.threads)  # this process only waits; its device label names the threads
    prompts = args.prompts or trace_source(args.pair)
    common = ["--pair", args.pair, "--n-prompts", str(args.n_prompts), "--max-new-tokens", str(args.max_new_tokens)]
    common += ["--width", str(args.width), "--max-depth", str(args.max_depth), "--threads", str(args.threads)]
    common += ["--device", args.device, *(["--prompts", prompts] if prompts else [])]
    workers = ["--workers", str(args.workers), *(["--ray-address", args.ray_address] if args.ray_address else [])]
    with tempfile.TemporaryDirectory(prefix="specgym-bench-workers-") as tmp:
        serial, merged = Path(tmp) / "serial.npz", Path(tmp) / "workers.npz"
        serial_s = timed_record([*common, "--out", str(serial)])
        workers_s = timed_record([*common, *workers, "--out", str(merged)])
        differing = differing_arrays(serial, merged)
        with np.load(serial) as trace:
            positions = int(trace["output_offsets"][-1])
    cluster = args.ray_address or os.environ.get("RAY_ADDRESS")
    result = {
        "benchmark": "workers",
        "pair": args.pair,
        "device": f"Ray cluster at {cluster}" if cluster else device_name(resolve_device(args.device)),
        "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),  # a shared machine's other work slows both runs
        "threads_per_process": args.threads,
        "workers": args.workers,
        "ray_address": cluster or "local",
        "prompts": prompts or "held-out reasoning-gym mix",
        "n_prompts": args.n_prompts,
        "max_new_tokens": args.max_new_tokens,
        "positions": positions,
        "serial_seconds": serial_s,
        "workers_seconds": workers_s,
        "speedup": serial_s / workers_s,
        "identical_arrays": not differing,
        "differing_arrays": differing,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    console.print(
        f"recording {args.n_prompts} {args.pair} prompts x {args.max_new_tokens} tokens: serial {serial_s:.1f} s, "
        f"{args.workers} workers {workers_s:.1f} s -> {result['speedup']:.2f}x; identical arrays: {not differing}"
    )
    return result
