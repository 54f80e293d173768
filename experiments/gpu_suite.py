"""Everything only a GPU shows, in one go, as JSON files under one directory.

    python -m experiments.gpu_suite --out DIR [--device cuda] [--pair smollm2-135m] [--policy RUN_OR_ZIP]
    python -m experiments.gpu_suite --out DIR --device cpu --quick       # the same steps, small (CI)

Steps, in order, each calling the library function under its own command and writing
``DIR/<step>.json`` (every file names its device):

- ``environment``: the machine: device, torch, CUDA, transformers, the suite's settings.
- ``lossless``: greedy SpD == target greedy, token for token, for several k and tree shapes, in
  float32 (``benchmark lossless``).
- ``engine``: SpecGym's loop against transformers' assisted generation at the same k, and
  target-only (``benchmark engine``).
- ``pair``: SpD at each static k against target-only, acceptance, the best k (``benchmark pair``).
- ``cost``: the profiled cost model calibrated on this device and scored against measured cycles
  (``benchmark cost``); the profile is ``DIR/profile.json``.
- ``trace``: train and held-out DraftVerify traces recorded on this device (``record_traces``),
  under ``DIR/traces/``.
- ``policy``: the learned DraftVerify pair: ``--policy`` if given, else a short co-adaptive PPO
  run on the train trace under this device's profile (``train``), under ``DIR/runs/``.
- ``evaluate``: that policy against every baseline on the held-out trace under the profile, and
  live against the best static k and target-only with the wall clock (``evaluate``).

A step that fails is recorded (status, seconds and the error's last line in its JSON and in
``DIR/summary.json``) and the rest still run; a step whose input failed is ``skipped``. The exit
code is 0 when every step passed, 1 otherwise; bad input (``--device cuda`` without a GPU, an
unwritable ``--out``) exits 2 before any step, with one line. ``--quick`` runs every step small,
on the ``tiny-random`` pair unless ``--pair`` says otherwise, in well under a minute on 2 CPU
cores; without it a step's sizes are those of a GPU run (see ``SIZES``), about 10 minutes with
the ``smollm2-135m`` pair on one GPU. docs/gpu.md says how to run it on a lent GPU machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from envs.pairs.build import check_writable
from envs.specdec import SpecGymError
from envs.specdec.cost import device_name
from envs.specdec.pair import resolve_device
from experiments.cli import CommandParser, positive_int, run_main, write_json

# the default mix's prompts of each split, frozen (experiments/prompts/README.md): the suite needs no
# reasoning-gym, which a GPU machine may lack (docs/gpu.md)
PROMPTS = {split: Path(__file__).parent / "prompts" / f"default_mix_{split}.jsonl" for split in ("train", "heldout")}
STEPS = ("environment", "lossless", "engine", "pair", "cost", "trace", "policy", "evaluate")
NEEDS = {"evaluate": ("trace", "policy"), "policy": ("trace",)}


@dataclass(frozen=True)
class Sizes:
    """How much each step does: prompts, tokens, repeats, training budget."""

    n_prompts: int  # lossless, engine, pair, cost scoring
    max_new_tokens: int
    repeats: int  # engine's interleaved repetitions
    calibration_repeats: int
    train_prompts: int  # trace prompts
    heldout_prompts: int
    trace_tokens: int
    timesteps: int  # PPO steps per role and round
    rounds: int


SIZES = {
    "full": Sizes(8, 64, 2, 5, 48, 24, 64, 20000, 2),
    "quick": Sizes(2, 12, 1, 7, 4, 3, 16, 512, 1),
}


@dataclass
class Suite:
    out: Path
    pair: str
    device: str
    threads: int | None
    sizes: Sizes
    quick: bool
    policy: str | None
    prompts: dict[str, str]  # by split
    cost_ok: bool = False  # whether the cost step calibrated this device's profile

    def pair_flags(self) -> list[str]:
        threads = ["--threads", str(self.threads)] if self.threads else []
        return ["--pair", self.pair, "--device", self.device, *threads]

    def prompt_flags(self, n: int | None = None) -> list[str]:
        s = self.sizes
        flags = ["--prompts", self.prompts["heldout"], "--n-prompts", str(n or s.n_prompts)]
        return [*flags, "--max-new-tokens", str(s.max_new_tokens)]

    @property
    def profile(self) -> Path:
        return self.out / "profile.json"

    @property
    def cost_model(self) -> str:
        """This device's profile from the cost step; analytic when that step did not pass (a
        calibration refused on a busy machine, say), so the policy steps still run (and say so)."""
        return str(self.profile) if self.cost_ok else "analytic"

    def trace(self, split: str) -> Path:
        return self.out / "traces" / f"{self.pair}__w4_d8_{split}.npz"


def benchmark(argv: list[str]) -> dict:
    """A ``python -m experiments.benchmark`` subcommand's results, by its own parser and run function."""
    from experiments.benchmark import build_parser

    args = build_parser().parse_args(argv)
    return args.run(args)


def step_environment(s: Suite) -> dict:
    import transformers

    dev = resolve_device(s.device)
    facts: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda_available": torch.cuda.is_available(),
        "cuda": torch.version.cuda,
    }
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        facts |= {
            "gpu": props.name,
            "gpu_memory_gib": props.total_memory / 2**30,
            "gpu_count": torch.cuda.device_count(),
        }
    settings = {"pair": s.pair, "quick": s.quick, "policy": s.policy, "prompts": s.prompts, "sizes": asdict(s.sizes)}
    return {"benchmark": "gpu-suite-environment", **facts, "settings": settings}


def step_lossless(s: Suite) -> dict:
    return benchmark(["lossless", *s.pair_flags(), *s.prompt_flags()])


def step_engine(s: Suite) -> dict:
    return benchmark(["engine", *s.pair_flags(), *s.prompt_flags(), "--k", "4", "--repeats", str(s.sizes.repeats)])


def step_pair(s: Suite) -> dict:
    ks = ["1", "2", "4"] if s.quick else ["1", "2", "3", "4", "5", "6", "8"]
    return benchmark(["pair", *s.pair_flags(), *s.prompt_flags(), "--ks", *ks])


def step_cost(s: Suite) -> dict:
    ks = ["2"] if s.quick else ["1", "2", "4", "6", "8"]
    reps = ["--calibration-repeats", str(s.sizes.calibration_repeats)]
    flags = [*s.pair_flags(), *s.prompt_flags(), "--ks", *ks, *reps, "--profile-out", str(s.profile)]
    result = benchmark(["cost", *flags])
    s.cost_ok = True
    return result


def step_trace(s: Suite) -> dict:
    from envs.specdec.trace import Trace
    from experiments.record_traces import TraceSettings, record

    out: dict[str, Any] = {"benchmark": "gpu-suite-trace", "pair": s.pair}
    n = {"train": s.sizes.train_prompts, "heldout": s.sizes.heldout_prompts}
    for split in ("train", "heldout"):
        start = time.perf_counter()
        path = record(
            TraceSettings(
                pair=s.pair,
                device=s.device,
                threads=s.threads,
                prompts=s.prompts[split],
                n_prompts=n[split],
                max_new_tokens=s.sizes.trace_tokens,
                width=4,
                max_depth=8,
                split=split,
                out=str(s.trace(split)),
            )
        )
        trace = Trace.load(path)
        out[split] = {
            "path": str(path),
            "seconds": time.perf_counter() - start,
            "n_prompts": trace.n_prompts,
            "positions": int(trace.output_offsets[-1]),
            "bytes": path.stat().st_size,
            "recorded_on": trace.meta["pair_info"],
        }
    return out


def step_policy(s: Suite) -> dict:
    if s.policy:
        return {"benchmark": "gpu-suite-policy", "policy": s.policy, "trained_here": False}
    from experiments.train import main as train

    sz = s.sizes
    flags = ["--env", "draft-verify", "--pair", s.pair, "--device", s.device, "--wandb-mode", "disabled"]
    flags += ["--traces", str(s.trace("train")), "--eval-traces", str(s.trace("heldout"))]
    flags += ["--cost-model", s.cost_model, "--timesteps", str(sz.timesteps), "--rounds", str(sz.rounds)]
    flags += ["--runs-dir", str(s.out / "runs"), "--no-progress"]
    if s.quick:  # one rollout of the config's 512 steps, not 4 of them
        flags += ["--n-envs", "1"]
    (row,) = train(flags)
    s.policy = row["run_dir"]
    return {
        "benchmark": "gpu-suite-policy",
        "policy": s.policy,
        "trained_here": True,
        "cost_model": s.cost_model,
        **row,
    }


def step_evaluate(s: Suite) -> dict:
    from experiments.evaluate import EvalSettings, evaluate_draft_verify

    return evaluate_draft_verify(
        EvalSettings(
            policy=str(s.policy),
            pair=s.pair,
            device=s.device,
            threads=s.threads,
            traces=str(s.trace("heldout")),
            cost_model=s.cost_model,
        )
    )


def run_steps(s: Suite, steps: dict[str, Callable[[Suite], dict]], device: str) -> dict[str, dict]:
    """Run each step, recording its result or its failure in ``DIR/<step>.json``; the summary rows."""
    summary: dict[str, dict] = {}
    for name, step in steps.items():
        start = time.perf_counter()
        failed = [need for need in NEEDS.get(name, ()) if summary.get(need, {}).get("status") != "ok"]
        if name == "policy" and s.policy:
            failed = []  # a given policy needs nothing recorded here
        row: dict[str, Any] = {"status": "ok", "error": None}
        if failed:
            row = {"status": "skipped", "error": f"needs {', '.join(failed)}, which did not run or pass"}
            result: dict[str, Any] = {}
        else:
            try:
                result = step(s)
            except (Exception, SystemExit) as exc:  # recorded (a command's own exit too); the rest still run
                lines = [line for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
                row = {"status": "failed", "error": f"{type(exc).__name__}: {lines[-1]}"}
                result = {"traceback": traceback.format_exc().splitlines()[-12:]}
                print(f"step {name} failed: {row['error']}", file=sys.stderr)
        row["seconds"] = time.perf_counter() - start
        data = {"step": name, **row, **result, "device": result.get("device", device)}
        write_json(s.out / f"{name}.json", data)
        summary[name] = {**row, "file": f"{name}.json"}
    return summary


def build_parser() -> argparse.ArgumentParser:
    p = CommandParser(
        prog="python -m experiments.gpu_suite",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, help="directory for the JSON files (made if missing)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present) | cpu | cuda[:N]")
    p.add_argument("--pair", default=None, help="registered pair (default: smollm2-135m; tiny-random with --quick)")
    p.add_argument("--policy", help="a DraftVerify run directory or depth-policy .zip (default: train one here)")
    p.add_argument(
        "--prompts",
        default=str(PROMPTS["heldout"]),
        help="held-out prompts .jsonl (default: the default mix's, frozen)",
    )
    p.add_argument(
        "--train-prompts", default=str(PROMPTS["train"]), help="the train trace's prompts (default: the default mix's)"
    )
    p.add_argument("--quick", action="store_true", help="every step small (CI on CPU)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS), help="run only these (default: all)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from envs.pairs import check_pair_name

    dev = resolve_device(args.device)  # bad input: one line, exit 2, before any step
    pair = args.pair or ("tiny-random" if args.quick else "smollm2-135m")
    check_pair_name(pair)
    out = Path(args.out)
    check_writable(out, "--out", "pass --out DIR in a writable place")
    out.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.prompts == args.train_prompts:
        raise SpecGymError("--prompts (held out) and --train-prompts are one file; pass two (the policy trains on one)")
    prompts = {"train": args.train_prompts, "heldout": args.prompts}
    sizes = SIZES["quick" if args.quick else "full"]
    suite = Suite(out, pair, str(dev), args.threads, sizes, args.quick, args.policy, prompts)
    device = device_name(dev)
    chosen = {name: globals()[f"step_{name}"] for name in STEPS if name in args.steps}
    start = time.perf_counter()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    steps = run_steps(suite, chosen, device)
    summary = {
        "benchmark": "gpu-suite",
        "device": device,
        "pair": pair,
        "quick": args.quick,
        "started": started,
        "seconds": time.perf_counter() - start,
        "passed": all(row["status"] == "ok" for row in steps.values()),
        "steps": steps,
    }
    write_json(out / "summary.json", summary)
    for name, row in steps.items():
        print(f"{name:12s} {row['status']:8s} {row['seconds']:7.1f} s  {row['error'] or ''}")
    print(json.dumps({"passed": summary["passed"], "seconds": round(summary["seconds"], 1)}))
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    run_main(main)
