"""Recording Arbitration decision trees for replay: resumable, in chunks, with a progress bar.

``python -m experiments.record_traces --env arbitration`` calls :func:`record_branches`. Items are
recorded in chunks of ``chunk``; each finished chunk is saved whole (write, then rename) under
``FILE.parts/``, so an interrupted recording resumes from the last chunk, and the parts are merged
into ``FILE`` and removed at the end.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

from tqdm.auto import tqdm

from envs.arbitration.env import ArbitrationEnv
from envs.pairs import pair_version
from envs.specdec.arbitrate import N_FEATURES
from envs.specdec.branches import BranchTree, ItemTree, items_digest
from envs.specdec.cost import device_name
from envs.specdec.errors import SpecGymError
from envs.tasks.splits import split_seed

DEFAULT_MAX_NODES = 4096


def branch_meta(env: ArbitrationEnv, max_nodes: int, max_drafts: int | None) -> dict:
    """What a record of ``env``'s items holds: a replay env refuses a record whose meta differs from it."""
    return {
        "env": "arbitration",
        "pair": env.pair_name,
        "pair_version": pair_version(env.pair_name),  # the build recorded: a replay refuses another
        "task": env.task,
        "split": env.split,
        "split_seed": split_seed(env.split),
        "k": env.k,
        "max_new_tokens": env.max_new_tokens,
        "n_features": N_FEATURES,
        "items_digest": items_digest([x.question for x in env.items]),
        "max_nodes": max_nodes,
        "max_drafts": max_drafts,
    }


def check_record_settings(max_nodes: int, max_drafts: int | None, chunk: int) -> None:
    if not (isinstance(max_nodes, int) and max_nodes >= 1):
        raise SpecGymError(f"max_nodes must be an integer >= 1 (nodes per item), got {max_nodes!r}")
    if max_drafts is not None and not (isinstance(max_drafts, int) and max_drafts >= 0):
        raise SpecGymError(f"max_drafts must be an integer >= 0 or unset, got {max_drafts!r}")
    if not (isinstance(chunk, int) and chunk >= 1):
        raise SpecGymError(f"chunk must be an integer >= 1, got {chunk!r}")


RecordItems = Callable[[Sequence[int]], list[ItemTree]]


def record_branches(
    meta: dict,
    n_items: int,
    out: str | Path,
    *,
    record_items: RecordItems,
    device: str,
    chunk: int = 50,
    progress: bool = True,
) -> BranchTree:
    """Record the decision trees of items ``0..n_items-1`` (what ``meta`` describes: see
    :func:`branch_meta`) into ``out``, ``chunk`` items at a time.

    ``record_items(indices) -> trees`` records a list of items in order: one by one in this process
    (``lambda ix: [env.record_item(i) for i in ix]``), or shared among workers by a caller that has them.
    """
    check_record_settings(meta["max_nodes"], meta["max_drafts"], chunk)
    out = Path(out)
    if out.suffix != ".npz":
        raise SpecGymError(f"--out {str(out)!r} must end in .npz")
    parts = out.with_name(out.name + ".parts")
    if parts.is_dir() and _parts_meta(parts) != meta:
        shutil.rmtree(parts)  # parts of another recording: start over rather than mix them
    parts.mkdir(parents=True, exist_ok=True)
    (parts / "meta.json").write_text(json.dumps(meta))
    trees: list[BranchTree] = []
    start = time.perf_counter()
    with tqdm(total=n_items, desc=f"recording {meta['pair']} branches", unit="item", disable=not progress) as bar:
        for s in range(0, n_items, chunk):
            path = parts / f"{s:07d}.npz"
            indices = range(s, min(s + chunk, n_items))
            if path.is_file():
                part = BranchTree.load(path)
            else:
                part = BranchTree.from_items(meta, record_items(indices))
                part.save(path)
            trees.append(part)
            bar.update(len(indices))
    tree = BranchTree.concat(trees)
    tree.meta.update(
        device=device,
        recorded=date.today().isoformat(),
        record_seconds=round(time.perf_counter() - start, 1),
        n_nodes=tree.n_nodes,
        complete_items=int(tree.item_complete.sum()),
    )
    tree.save(out)
    shutil.rmtree(parts)
    return tree


def record_env(
    env: ArbitrationEnv,
    out: str | Path,
    *,
    max_nodes: int = DEFAULT_MAX_NODES,
    max_drafts: int | None = None,
    chunk: int = 50,
    progress: bool = True,
) -> BranchTree:
    """Every item of a live ``env`` recorded in this process (:func:`record_branches`)."""
    return record_branches(
        branch_meta(env, max_nodes, max_drafts),
        len(env.items),
        out,
        record_items=lambda indices: [env.record_item(i, max_nodes, max_drafts) for i in indices],
        device=env_device(env),
        chunk=chunk,
        progress=progress,
    )


def env_device(env: ArbitrationEnv) -> str:
    """The device the env's models run on, named for records (on a worker, it is the worker's)."""
    return device_name(env.pair.device)


def record_indices(env: ArbitrationEnv, index: int, *, max_nodes: int, max_drafts: int | None) -> ItemTree:
    """Item ``index``'s tree (a pool's per-item work)."""
    return env.record_item(index, max_nodes, max_drafts)


def _parts_meta(parts: Path) -> dict | None:
    try:
        return json.loads((parts / "meta.json").read_text())
    except (OSError, ValueError):
        return None
