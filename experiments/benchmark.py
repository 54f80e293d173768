"""Speed benchmarks, measured as ratios within one run (machines here are shared and noisy).

    python -m experiments.benchmark engine --pair NAME --k K --out FILE.json
        target-only vs SpecGym at fixed k vs transformers' assisted generation at the same k,
        interleaved over prompts and repetitions; greedy outputs must be identical.
    python -m experiments.benchmark lossless --pair NAME [--ks 1 2 4 8] [--trees 2x4 4x8] --out FILE.json
        greedy SpD against target-only decoding, token for token, per k and tree shape (float32).
    python -m experiments.benchmark cost --pair NAME --out FILE.json
        calibrate the profiled cost model, then score its cycle-time predictions against
        measured cycles of fresh decoding (median absolute relative error).
    python -m experiments.benchmark pair NAME --out FILE.json
        acceptance by draft length, the best static k and its speedup over target-only.
    python -m experiments.benchmark env --env draft-verify --backend replay|live --pair NAME --out FILE.json
        environment steps per second in one process.
    python -m experiments.benchmark startup [--env-id SpecGym/DraftVerify-v1] [--runs 5] --out FILE.json
        seconds from a fresh process to an env's first step (gym.make + reset + step).
    python -m experiments.benchmark decode --pair NAME [--policy RUN_DIR] --out FILE.json
        end-to-end tokens/s of target-only, transformers' assisted generation (fixed k and
        dynamic), SpecGym at each static k and learned DraftVerify policies, interleaved.
    python -m experiments.benchmark headroom --pair NAME [--width W] [--policy RUN_DIR] --out FILE.json
        DraftVerify under the cost model: the oracle, the depth-only oracle, the best static
        k, train-tuned rules and a learned policy; also with a faster draft (what-if).
    python -m experiments.benchmark transfer --pair NAME --out FILE.json
        one DraftVerify policy trained under a cost-profile family (--family mixed) against a
        specialist trained per test profile, the best static k, train-tuned rule pairs and the
        oracle, on the held-out trace under each test profile (two of them unseen in training).
    python -m experiments.benchmark workers --pair gsm --n-prompts 240 --max-new-tokens 128 --workers 2 --out FILE.json
        trace recording in one process against --workers Ray actors (start-up included, 1 torch
        thread each), and whether the two traces are identical.
    python -m experiments.benchmark records [--pair smollm2-math] [--split heldout] [--n-items 100] --out FILE.json
        this machine's live decoding against an Arbitration branch record made elsewhere
        (bfloat16 kernels differ between CPUs): items on the record's keep-target path.

Each subcommand lives in ``experiments/benchmarks/<name>.py``.
"""

from __future__ import annotations

import argparse
import importlib

from experiments.cli import CommandParser, run_main, write_json

SUBCOMMANDS = (
    "engine",
    "lossless",
    "cost",
    "pair",
    "env",
    "startup",
    "decode",
    "headroom",
    "workers",
    "transfer",
    "records",
)


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="python -m experiments.benchmark",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f"experiments.benchmarks.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    write_json(args.out, args.run(args))


if __name__ == "__main__":
    run_main(main)
