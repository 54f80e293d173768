"""A pair's default artifacts in the data directory, made on first use: its cost profile on this
device and its DraftVerify traces (what train, evaluate, the benchmarks and the ablations read
when not given files of their own)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from envs.pairs import data_dir, pair_spec, shared_pair
from envs.pairs.build import check_data_dir_writable
from envs.pairs.registry import default_dtype
from envs.specdec import SpecGymError
from envs.specdec.cost import ProfiledCost, calibrate
from envs.specdec.pair import resolve_device, resolve_dtype
from envs.specdec.trace import Trace

if TYPE_CHECKING:
    from envs.arbitration import ArbitrationEnv

N_TRACE_PROMPTS = {"train": 48, "heldout": 24}
TRACE_TOKENS = 64


def trace_source(pair: str) -> str | None:
    """Prompts a pair's traces are recorded on: a task pair's own questions, else the default mix."""
    spec = pair_spec(pair)
    return f"task:{spec.task}" if spec and spec.task else None


def default_profile_path(pair_name: str, device: torch.device, dtype: torch.dtype = torch.float32) -> Path:
    """Where ``benchmark cost`` saves a pair's profile for a device and dtype."""
    slug = "cuda-" + torch.cuda.get_device_name(device).replace(" ", "_") if device.type == "cuda" else "cpu"
    return data_dir() / "profiles" / f"{pair_name}__{slug}__{str(dtype).removeprefix('torch.')}.json"


def default_cost_model(pair: str, device: str = "auto") -> str:
    """The pair's default cost model (its spec's): ``analytic``, or its profile on this device and
    dtype in the data directory, calibrated on first use."""
    spec = pair_spec(pair)
    if spec is not None and spec.cost_model == "analytic":
        return "analytic"
    dev = resolve_device(device)
    path = default_profile_path(pair, dev, resolve_dtype(default_dtype(pair), dev))
    why = unusable(path, ProfiledCost.load)
    if why:
        check_data_dir_writable()
        print(f"calibrating the cost model of {pair} on {dev} ({why}; saved to {path})")
        calibrate(shared_pair(pair, str(dev)), repeats=5).save(path)
    return str(path)


def default_trace_path(pair: str, split: str, width: int = 4, max_depth: int = 8, prompts: str | None = None) -> Path:
    """Where :func:`default_traces` keeps a pair's trace of one split, tree shape and prompt source
    (``default``: the pair's own, :func:`trace_source`; else the source, e.g. ``mix-chat``)."""
    name = "default" if prompts is None else re.sub(r"[^A-Za-z0-9_.-]+", "-", prompts).strip("-")
    return data_dir() / "traces" / f"{pair}__{name}__w{width}_d{max_depth}_{split}.npz"


def check_split_source(prompts: str | None) -> None:
    """Refuse a prompt source that has no train/held-out splits for default traces: a .jsonl file
    gives the same prompts for every split (an unknown mix or task is refused when it is read)."""
    if prompts is not None and prompts.endswith(".jsonl"):
        raise SpecGymError(
            f"--prompts {prompts}: a .jsonl file has no train and held-out splits; record its traces with "
            "python -m experiments.record_traces --prompts FILE --split train|heldout --out FILE.npz and pass "
            "them as --traces / --eval-traces"
        )


def unusable(path: Path, read: Callable[[Path], object]) -> str | None:
    """Why a default artifact must be made (again): missing, or one ``read`` refuses (an interrupted
    save, a corrupt file; its error is printed); None when ``read`` takes it."""
    if not path.is_file():
        return "once"
    try:
        read(path)
    except SpecGymError as exc:
        print(f"making {path.name} again: {exc}")
        return "again: the saved one was unusable"
    return None


def default_traces(pair: str, split: str, width: int = 4, max_depth: int = 8, prompts: str | None = None) -> Path:
    """A DraftVerify trace of ``pair`` in the data directory, recorded on first use from ``prompts``'
    ``split`` (default: the pair's own, :func:`trace_source`)."""
    from experiments.record_traces import TraceSettings, record

    check_split_source(prompts)
    path = default_trace_path(pair, split, width, max_depth, prompts)
    if unusable(path, Trace.load_meta):
        check_data_dir_writable()
        record(
            TraceSettings(
                pair=pair,
                prompts=trace_source(pair) if prompts is None else prompts,
                n_prompts=N_TRACE_PROMPTS[split],
                max_new_tokens=TRACE_TOKENS,
                width=width,
                max_depth=max_depth,
                split=split,
                out=str(path),
            )
        )
    return path


def default_branches(
    pair: str,
    task: str,
    split: str,
    n_items: int,
    k: int = 4,
    max_new_tokens: int = 64,
    device: str = "auto",
    workers: int | None = None,
    ray_address: str | None = None,
) -> Path:
    """An Arbitration branch record of ``pair``: the one bundled with the repository for these
    settings when there is one (:func:`usable_bundled_branches`), else one in the data directory,
    recorded on first use (and resumed, when an earlier recording was interrupted), over ``workers``
    Ray actors when given."""
    from experiments.record_traces import BranchSettings, default_branch_path, record_arbitration

    bundled = usable_bundled_branches(pair, task, split, n_items, k, max_new_tokens)
    if bundled is not None:
        return bundled

    settings = BranchSettings(
        pair=pair,
        task=task,
        split=split,
        n_items=n_items,
        k=k,
        max_new_tokens=max_new_tokens,
        device=device,
        workers=workers,
        ray_address=ray_address,
    )
    path = default_branch_path(settings)
    # what a replay takes: a record of an earlier build of the pair, or of other items, is made again
    if unusable(path, lambda p: replay_arbitration_env(pair, task, split, n_items, k, max_new_tokens, p)):
        check_data_dir_writable()
        record_arbitration(replace(settings, out=str(path)))
    return path


def replay_arbitration_env(
    pair: str,
    task: str,
    split: str,
    n_items: int,
    k: int,
    max_new_tokens: int,
    traces: str | Path,
    device: str = "auto",
) -> ArbitrationEnv:
    """A replay ArbitrationEnv over the first ``n_items`` of ``split`` from the branch record
    ``traces`` (the env checks the record holds those items, recorded with these settings)."""
    from envs.arbitration import ArbitrationEnv

    return ArbitrationEnv(
        pair=pair,
        task=task,
        n_items=n_items,
        split=split,
        k=k,
        max_new_tokens=max_new_tokens,
        backend="replay",
        traces=str(traces),
        device=device,
    )


def usable_bundled_branches(pair: str, task: str, split: str, n_items: int, k: int, max_new_tokens: int) -> Path | None:
    """The pair's bundled branch record for these settings (``envs.pairs.replay_assets``) if a replay
    env takes it: the items it holds must still be the ones the task generates (a reasoning-gym
    release can change them; then the record is made again in the data directory)."""
    from envs.pairs.replay_assets import bundled_branches

    path = bundled_branches(pair, task, split, k, max_new_tokens, n_items)
    if path is None:
        return None
    try:
        replay_arbitration_env(pair, task, split, n_items, k, max_new_tokens, path)
    except SpecGymError as exc:
        print(f"not using the bundled {path.name}: {exc}")
        return None
    return path
