"""``startup``: seconds from a fresh Python process to an env's first step: ``gym.make`` + ``reset`` +
``step`` (imports included), each run its own process, the interpreter's start timed from outside."""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone

from envs.specdec import SpecGymError
from envs.specdec.cost import device_name
from envs.specdec.pair import resolve_device
from experiments import cli
from experiments.benchmarks.common import spread
from experiments.cli import positive_int

console = cli.console()

# the child: make, reset and step the env, then print whether any model pair was loaded
CHILD = """
import sys, gymnasium as gym, envs
from envs.pairs import shared_pair
env = gym.make(sys.argv[1])
env.reset(seed=0)
env.step(env.action_space.sample())
print(shared_pair.cache_info().currsize)
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    startup = sub.add_parser("startup", help="seconds from a fresh process to an env's first step")
    startup.add_argument("--env-id", default="SpecGym/DraftVerify-v1", help="registered id (default: %(default)s)")
    startup.add_argument("--runs", type=positive_int, default=5, help="fresh processes (default: 5)")
    startup.add_argument("--out", help="write the results JSON here")
    startup.set_defaults(run=run)


def run(args: argparse.Namespace) -> dict:
    seconds, cpu, loaded = [], [], []
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for _ in range(args.runs):
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", CHILD, args.env_id], capture_output=True, text=True, env=env, check=False
        )
        seconds.append(time.perf_counter() - start)
        now = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(now.ru_utime - used.ru_utime + now.ru_stime - used.ru_stime)
        if done.returncode != 0:
            raise SpecGymError(f"{args.env_id}: {(done.stderr.strip().splitlines() or ['failed'])[-1]}")
        loaded.append(int(done.stdout.split()[-1]))
    result = {
        "benchmark": "startup",
        "env": args.env_id,
        "device": device_name(resolve_device("cpu")),
        "runs": args.runs,
        "seconds": spread(seconds),
        # user + system CPU time of each child: the wall clock on a core nothing else wants
        "cpu_seconds": spread(cpu),
        "load_average_1min": os.getloadavg()[0],
        "what": "fresh python process: imports, gym.make, reset(seed=0), one step (random action); wall clock",
        "pairs_loaded": max(loaded),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    s = result["seconds"]
    console.print(
        f"{args.env_id}: {s['mean']:.2f} s (sd {s['std']:.2f}, max {s['max']:.2f}) from a fresh process to the "
        f"first step over {args.runs} runs (CPU time {result['cpu_seconds']['mean']:.2f} s, load average "
        f"{result['load_average_1min']:.1f}); model pairs loaded: {result['pairs_loaded']}"
    )
    return result
