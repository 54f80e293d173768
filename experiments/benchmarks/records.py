"""``records``: how closely this machine's live decoding of a pair follows an Arbitration branch
record made on another one. Greedy decoding is exact only on one machine: bfloat16 kernels differ
between CPUs, so a near-tie can break the other way. Per item, the pair decodes keeping the
target's token at every mismatch and is compared with the record's keep-target path: the same
mismatches, the same text, the same verdict (``ArbitrationEnv.reproduces_target_path``). Replay
serves the record as recorded on any machine; only the branches a record lacks are decoded here.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone

import torch
from tqdm.auto import tqdm

from envs.pairs.replay_assets import require_bundled_branches
from envs.specdec.cost import device_name
from experiments import cli
from experiments.artifacts import replay_arbitration_env
from experiments.cli import positive_int

console = cli.console()


def add_parser(sub: argparse._SubParsersAction) -> None:
    records = sub.add_parser("records", help="this machine's live decoding against an Arbitration branch record")
    records.add_argument("--pair", default="smollm2-math", help="registered pair (default: %(default)s)")
    records.add_argument("--task", default="chain_sum")
    records.add_argument("--split", default="heldout", choices=("train", "heldout", "validation"))
    records.add_argument("--n-items", type=positive_int, default=100, help="the record's first items (default: 100)")
    records.add_argument("--traces", help="the branch record (default: the one bundled for these settings)")
    records.add_argument("--k", type=positive_int, default=4)
    records.add_argument("--max-new-tokens", type=positive_int, default=64)
    records.add_argument("--threads", type=positive_int, default=1, help="torch threads (default: 1, as recorded)")
    records.add_argument("--out", help="write the results JSON here")
    records.set_defaults(run=run)


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    a = args
    # the bundled record unless one is given: never one recorded here, which would only meet itself
    traces = a.traces or require_bundled_branches(a.pair, a.task, a.split, a.k, a.max_new_tokens, a.n_items)
    env = replay_arbitration_env(a.pair, a.task, a.split, a.n_items, a.k, a.max_new_tokens, traces, "cpu")
    start = time.perf_counter()
    rows = [env.reproduces_target_path(i) for i in tqdm(range(a.n_items), desc="items", unit="item")]
    same = {key: sum(r[key] for r in rows) for key in ("path", "text", "correct")}
    result = {
        "benchmark": "records",
        "pair": a.pair,
        "task": a.task,
        "split": a.split,
        "n_items": a.n_items,
        "traces": str(traces),
        "recorded_on": env.tree.meta.get("device"),
        "device": device_name(torch.device("cpu")),
        "dtype": env.pair.dtype_name,
        "what": "items whose live target-only decoding here meets the record's keep-target path",
        "same_path": same["path"],
        "same_text": same["text"],
        "same_verdict": same["correct"],
        "seconds": round(time.perf_counter() - start, 1),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    console.print(
        f"{a.pair} {a.split}, {a.n_items} items recorded on {result['recorded_on']}, decoded on {result['device']}: "
        f"same mismatches {same['path']}, same text {same['text']}, same verdict {same['correct']}"
    )
    return result
