"""Record draft-proposal traces for exact, model-free DraftVerify replay.

    python -m experiments.record_traces --pair P [--prompts SRC] [--n-prompts N]
        [--max-new-tokens M] [--width W] [--max-depth D] [--split heldout|train] --out FILE.npz

For each prompt: the target's greedy output, and at every output position the draft's top-W
tree to depth D (teacher-forced, batched). Use the file with
``gymnasium.make("SpecGym/DraftVerify-v0", backend="replay", traces=FILE.npz, pair=P, width=W)``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from envs.specdec import SpecGymError, data_dir
from envs.specdec.trace import record_trace
from envs.tasks.prompts import HELDOUT_SEED, TRAIN_SEED, load_prompts
from experiments.cli import add_pair_args, add_prompt_args, pair_from_args, run_main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.record_traces",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_pair_args(parser)
    add_prompt_args(parser, n=20, max_new=128)
    group = parser.add_argument_group("trace")
    group.add_argument("--width", type=int, default=1, help="tree width W (1 = chain; default: 1)")
    group.add_argument("--max-depth", type=int, default=8, help="tree depth recorded (default: 8)")
    group.add_argument("--split", choices=("heldout", "train"), default="heldout", help="prompt seed split")
    group.add_argument("--chunk", type=int, default=64, help="positions per batched draft forward")
    group.add_argument("--out", help="output .npz (default: <data dir>/traces/<pair>__w<W>_d<D>_<split>.npz; train "
                       "and the benchmarks record and read their own, <pair>__default__w<W>_d<D>_<split>.npz, "
                       "so pass this one to them with --traces)")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> Path:
    args = build_parser().parse_args(argv)
    if args.chunk < 1:
        raise SpecGymError(f"--chunk must be >= 1, got {args.chunk}")
    pair = pair_from_args(args)
    seed = TRAIN_SEED if args.split == "train" else HELDOUT_SEED
    ids = [pair.encode(text) for text in load_prompts(args.prompts, args.n_prompts, seed)]
    start = time.perf_counter()
    trace = record_trace(
        pair,
        ids,
        max_new_tokens=args.max_new_tokens,
        width=args.width,
        max_depth=args.max_depth,
        chunk=args.chunk,
        meta={"prompts": args.prompts, "split": args.split, "prompt_seed": seed},
    )
    out = args.out or data_dir() / "traces" / f"{pair.name}__w{args.width}_d{args.max_depth}_{args.split}.npz"
    path = trace.save(out)
    positions = int(trace.output_offsets[-1])
    print(
        f"recorded {trace.n_prompts} prompts, {positions} positions in {time.perf_counter() - start:.1f} s "
        f"-> {path} (+ {path.with_suffix('.json').name})"
    )
    return path


if __name__ == "__main__":
    run_main(main)
