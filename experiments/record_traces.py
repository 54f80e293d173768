"""Record draft-proposal traces for exact, model-free DraftVerify replay.

    python -m experiments.record_traces --pair P [--prompts SRC] [--n-prompts N]
        [--max-new-tokens M] [--width W] [--max-depth D] [--split heldout|train] --out FILE.npz
        [--workers N [--ray-address ADDR]]

For each prompt: the target's greedy output, and at every output position the draft's top-W
tree to depth D (teacher-forced, batched). With ``--workers N`` the prompts are shared among N
Ray actors, each loading the pair once (one GPU each on a cluster with GPUs; docs/scaling.md);
the trace is the serial one, saved here. Use the file with
``gymnasium.make("SpecGym/DraftVerify-v0", backend="replay", traces=FILE.npz, pair=P, width=W)``.
"""

from __future__ import annotations

import argparse
import functools
import time
from dataclasses import dataclass
from pathlib import Path

from envs.pairs import data_dir
from envs.pairs.build import check_data_dir_writable, check_writable
from envs.specdec import SpecGymError
from envs.specdec.pair import ModelPair
from envs.specdec.trace import PromptTrace, Trace, check_trace_settings, pair_facts, record_prompt, trace_meta
from envs.tasks.prompts import load_prompts
from envs.tasks.splits import SPLITS, split_seed
from experiments.cli import PairArgs, add_pair_args, add_prompt_args, pair_args, pair_from_args, run_main
from experiments.workers import Pool, WorkerArgs, add_worker_args, check_workers, open_pool


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
    group.add_argument("--split", choices=SPLITS, default="heldout", help="prompt seed split")
    group.add_argument("--chunk", type=int, default=64, help="positions per batched draft forward")
    group.add_argument(
        "--out",
        help="output .npz (default: <data dir>/traces/<pair>__w<W>_d<D>_<split>.npz; train "
        "and the benchmarks record and read their own, <pair>__default__w<W>_d<D>_<split>.npz, "
        "so pass this one to them with --traces)",
    )
    add_worker_args(parser)
    return parser


@dataclass(kw_only=True)
class TraceSettings(PairArgs, WorkerArgs):
    """What to record: the pair (a registered name, or --target/--draft paths) and the trace's shape."""

    prompts: str | None = None
    n_prompts: int = 20
    max_new_tokens: int = 128
    width: int = 1
    max_depth: int = 8
    split: str = "heldout"
    chunk: int = 64
    out: str | None = None


def record(settings: TraceSettings) -> Path:
    """Record the trace and save it (default path: the data directory's traces/); its path."""
    s = settings
    check_trace_settings(max_new_tokens=s.max_new_tokens, width=s.width, max_depth=s.max_depth, chunk=s.chunk)
    if not isinstance(s.n_prompts, int) or s.n_prompts < 1:
        raise SpecGymError(f"--n-prompts must be an integer >= 1, got {s.n_prompts!r}")
    if s.out is not None and Path(s.out).suffix != ".npz":
        raise SpecGymError(f"--out {s.out!r} must end in .npz")
    if s.out:  # before the recording, which would otherwise end in an OSError at the save
        check_writable(Path(s.out).parent, "the --out directory", "pass --out FILE.npz in a writable directory")
    else:
        check_data_dir_writable()
    check_workers(s.workers, s.ray_address, s.device)
    seed = split_seed(s.split)
    texts = load_prompts(s.prompts, s.n_prompts, seed)
    start = time.perf_counter()
    shape = {"max_new_tokens": s.max_new_tokens, "width": s.width, "max_depth": s.max_depth}
    with open_pool(
        functools.partial(pair_from_args, pair_args(s)),
        workers=s.workers,
        address=s.ray_address,
        threads=s.threads,
        device=s.device,
    ) as pool:
        meta = {"prompts": s.prompts, "split": s.split, "prompt_seed": seed}
        trace = record_texts(pool, texts, chunk=s.chunk, meta=meta, **shape)
    pair_name = trace.meta["pair"]
    out = s.out or data_dir() / "traces" / f"{pair_name}__w{s.width}_d{s.max_depth}_{s.split}.npz"
    path = trace.save(out)
    positions = int(trace.output_offsets[-1])
    print(
        f"recorded {trace.n_prompts} prompts, {positions} positions in {time.perf_counter() - start:.1f} s "
        f"-> {path} (+ {path.with_suffix('.json').name})"
    )
    return path


def record_texts(
    pool: Pool, texts: list[str], *, max_new_tokens: int, width: int, max_depth: int, chunk: int, meta: dict
) -> Trace:
    """The trace of ``texts`` recorded by ``pool``'s workers (each holding the pair), in prompt order."""
    shape = {"max_new_tokens": max_new_tokens, "width": width, "max_depth": max_depth}
    facts = pool.call(pair_facts)
    parts = pool.map(functools.partial(record_text, chunk=chunk, **shape), texts, "recording traces")
    return Trace.from_prompts(parts, trace_meta(facts, n_prompts=len(parts), meta=meta, **shape))


def record_text(pair: ModelPair, text: str, **settings: int) -> PromptTrace:
    """One prompt, encoded by the pair that records it (a worker's, with --workers)."""
    return record_prompt(pair, pair.encode(text), **settings)


def main(argv: list[str] | None = None) -> Path:
    return record(TraceSettings(**vars(build_parser().parse_args(argv))))


if __name__ == "__main__":
    run_main(main)
