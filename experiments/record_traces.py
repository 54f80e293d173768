"""Record what replay serves: DraftVerify's draft-proposal traces, or Arbitration's decision trees.

    python -m experiments.record_traces --pair P [--prompts SRC] [--n-prompts N]
        [--max-new-tokens M] [--width W] [--max-depth D] [--split heldout|train] --out FILE.npz
        [--workers N [--ray-address ADDR]]

For each prompt: the target's greedy output, and at every output position the draft's top-W
tree to depth D (teacher-forced, batched). With ``--workers N`` the prompts are shared among N
Ray actors, each loading the pair once (one GPU each on a cluster with GPUs; docs/scaling.md);
the trace is the serial one, saved here. Use the file with
``gymnasium.make("SpecGym/DraftVerify-v0", backend="replay", traces=FILE.npz, pair=P, width=W)``.

    python -m experiments.record_traces --env arbitration --pair gsm --task chain_sum
        [--split train|heldout|validation] --n-items N [--k 4] [--max-new-tokens 64] --out FILE.npz

For each item: every keep-target / keep-draft branch of its arbitrated greedy decoding, with the
observation at each mismatch and the scored answer at each leaf (``envs.specdec.branches``), of
the train split unless ``--split`` says otherwise (the env's default); resumable (finished chunks
are kept under FILE.npz.parts/). Use the file with
``gymnasium.make("SpecGym/Arbitration-v0", backend="replay", traces=FILE.npz, ...)``.
"""

from __future__ import annotations

import argparse
import functools
import time
from dataclasses import dataclass
from pathlib import Path

from envs.arbitration.record import DEFAULT_MAX_NODES
from envs.pairs import data_dir
from envs.pairs.build import check_data_dir_writable, check_writable
from envs.pairs.replay_assets import branch_record_name
from envs.specdec import SpecGymError
from envs.specdec.pair import ModelPair
from envs.specdec.trace import PromptTrace, Trace, check_trace_settings, pair_facts, record_prompt, trace_meta
from envs.tasks.prompts import load_prompt_set
from envs.tasks.splits import SPLITS, split_seed
from experiments.cli import (
    CommandParser,
    PairArgs,
    add_pair_args,
    add_prompt_args,
    pair_args,
    pair_from_args,
    positive_int,
    run_main,
)
from experiments.workers import Pool, WorkerArgs, add_worker_args, check_workers, open_pool
from experiments.workloads import category_meta


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="python -m experiments.record_traces",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--env", choices=("draft-verify", "arbitration"), default="draft-verify")
    add_pair_args(parser, default=None, default_help="smollm2-135m; gsm for --env arbitration")
    add_prompt_args(parser, n=20, max_new=None, max_new_help="(default: 128; 64 for --env arbitration)")
    group = parser.add_argument_group("trace")
    group.add_argument("--width", type=int, default=1, help="tree width W (1 = chain; default: 1)")
    group.add_argument("--max-depth", type=int, default=8, help="tree depth recorded (default: 8)")
    group.add_argument(
        "--split",
        choices=SPLITS,
        default=None,
        help="prompt or item seed split (default: heldout; train for --env arbitration)",
    )
    group.add_argument(
        "--chunk",
        type=int,
        default=None,
        help="positions per batched draft forward (default: 64); with --env arbitration, items per saved part (50)",
    )
    group.add_argument(
        "--out",
        help="output .npz (default: <data dir>/traces/<pair>__w<W>_d<D>_<split>.npz; train "
        "and the benchmarks record and read their own, <pair>__default__w<W>_d<D>_<split>.npz, "
        "so pass this one to them with --traces)",
    )
    arb = parser.add_argument_group("arbitration (--env arbitration)")
    arb.add_argument("--task", default="chain_sum", help="reasoning-gym task or GSM8K-format .jsonl")
    arb.add_argument("--n-items", type=positive_int, default=500, help="items, from the split's first (default: 500)")
    arb.add_argument("--k", type=positive_int, default=4, help="drafted tokens per cycle (default: 4)")
    arb.add_argument(
        "--max-nodes",
        type=positive_int,
        default=DEFAULT_MAX_NODES,
        help=f"decisions recorded per item at most; keep-target chains always complete (default: {DEFAULT_MAX_NODES})",
    )
    arb.add_argument("--max-drafts", type=int, default=None, help="kept draft tokens per recorded path at most")
    add_worker_args(parser)
    return parser


@dataclass(kw_only=True)
class BranchSettings(PairArgs, WorkerArgs):
    """What ``--env arbitration`` records: the items (pair, task, split, count) and the decoding (k, tokens)."""

    pair: str | None = "gsm"
    task: str = "chain_sum"
    split: str = "train"
    n_items: int = 500
    k: int = 4
    max_new_tokens: int = 64
    max_nodes: int = DEFAULT_MAX_NODES
    max_drafts: int | None = None
    chunk: int = 50
    out: str | None = None


def default_branch_path(s: BranchSettings) -> Path:
    name = branch_record_name(s.task, s.k, s.max_new_tokens, s.split, s.n_items)
    return data_dir() / "traces" / f"{s.pair}__{name}"


def record_arbitration(s: BranchSettings) -> Path:
    """Record the decision trees of ``s``'s items (see the module docstring); the file's path."""
    from envs.arbitration import ArbitrationEnv
    from envs.arbitration.record import branch_meta, check_record_settings, env_device, record_branches, record_indices

    check_record_settings(s.max_nodes, s.max_drafts, s.chunk)
    if s.target or s.draft:
        raise SpecGymError("--env arbitration records a registered pair (its task scorer): pass --pair, not --target")
    out = Path(s.out) if s.out else default_branch_path(s)
    if out.suffix != ".npz":
        raise SpecGymError(f"--out {str(out)!r} must end in .npz")
    check_writable(out.parent, "the --out directory", "pass --out FILE.npz in a writable directory")
    check_workers(s.workers, s.ray_address, s.device)
    env_kwargs = {
        "pair": s.pair,
        "task": s.task,
        "n_items": s.n_items,
        "split": s.split,
        "k": s.k,
        "max_new_tokens": s.max_new_tokens,
        "device": s.device,
        "dtype": s.dtype,
    }
    limits = {"max_nodes": s.max_nodes, "max_drafts": s.max_drafts}
    with open_pool(
        functools.partial(ArbitrationEnv, **env_kwargs),
        workers=s.workers,
        address=s.ray_address,
        threads=s.threads,
        device=s.device,
        progress=False,  # record_branches shows the one bar
    ) as pool:
        work = functools.partial(record_indices, **limits)
        tree = record_branches(
            pool.call(functools.partial(branch_meta, **limits)),
            s.n_items,
            out,
            record_items=lambda indices: pool.map(work, list(indices), "recording branches"),
            device=pool.call(env_device),
            chunk=s.chunk,
        )
    m = tree.meta
    print(
        f"recorded {tree.n_items} items, {tree.n_nodes} decisions ({m['complete_items']} items complete) "
        f"in {m['record_seconds']:.1f} s -> {out}"
    )
    return out


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
    prompts = load_prompt_set(s.prompts, s.n_prompts, seed)
    start = time.perf_counter()
    shape = {"max_new_tokens": s.max_new_tokens, "width": s.width, "max_depth": s.max_depth}
    with open_pool(
        functools.partial(pair_from_args, pair_args(s)),
        workers=s.workers,
        address=s.ray_address,
        threads=s.threads,
        device=s.device,
    ) as pool:
        meta = {"prompts": s.prompts, "split": s.split, "prompt_seed": seed, **category_meta(prompts.categories)}
        trace = record_texts(pool, prompts.texts, chunk=s.chunk, meta=meta, **shape)
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
    """One prompt, encoded by the pair that records it (a worker's, with --workers); one that
    leaves no room in the pair's context window is refused, naming it. The output stops at the
    window's end (or --max-new-tokens, or EOS), whichever comes first."""
    ids = pair.encode(text)
    if len(ids) >= pair.max_context:
        start = " ".join(text.split())[:60]
        raise SpecGymError(
            f"prompt {start!r}... is {len(ids)} tokens, and pair {pair.name!r} takes {pair.max_context} "
            "(prompt and output together); shorten it or leave it out of --prompts"
        )
    return record_prompt(pair, ids, **settings)


ARBITRATION_ONLY = ("task", "n_items", "k", "max_nodes", "max_drafts")
DRAFT_VERIFY_ONLY = ("prompts", "n_prompts", "width", "max_depth")


def main(argv: list[str] | None = None) -> Path:
    parser = build_parser()
    options = vars(parser.parse_args(argv))
    env = options.pop("env")
    if env == "arbitration":
        for name in DRAFT_VERIFY_ONLY:
            options.pop(name)
        options["pair"] = options["pair"] or "gsm"
        options["max_new_tokens"] = options["max_new_tokens"] or 64
        options["split"] = options["split"] or BranchSettings.split  # what the env trains on
        options["chunk"] = options["chunk"] or BranchSettings.chunk
        return record_arbitration(BranchSettings(**options))
    for name in ARBITRATION_ONLY:
        options.pop(name)
    options["pair"] = options["pair"] or "smollm2-135m"
    options["max_new_tokens"] = options["max_new_tokens"] or 128
    options["split"] = options["split"] or TraceSettings.split
    options["chunk"] = options["chunk"] or TraceSettings.chunk
    return record(TraceSettings(**options))


if __name__ == "__main__":
    run_main(main)
