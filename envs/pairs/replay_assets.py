"""Replay data bundled with the repository, so an env replays a real pair at once, with no model
load and no download:

- DraftVerify: a pair's recorded draft traces (train and held-out) and a calibrated cost profile
  (``SpecGym/DraftVerify-v1``);
- Arbitration: a pair's recorded decision trees (branch records) of the train and held-out items
  (``SpecGym/Arbitration-SmolLM2-Math-v0``; the default run on that pair finds them here instead of
  recording them).

The recipe of each file is in the README beside it."""

from __future__ import annotations

from pathlib import Path

from envs.pairs.registry import BUNDLED
from envs.specdec.errors import SpecGymError

BUNDLED_NAME = "bundled"  # what traces= and cost_model= say to mean these files

# pair -> (its folder under envs/pairs/assets, the profile's file name: calibrated on which device and dtype)
REPLAY_ASSETS: dict[str, tuple[str, str]] = {
    "smollm2-135m": ("smollm2-135m-replay", "profile__cpu-amd-epyc__bfloat16.json"),
}


# pair -> its folder of branch records, named as the data directory names them (minus the pair):
# {task}_k{k}_m{max_new_tokens}_{split}_n{items}.npz
BRANCH_ASSETS: dict[str, str] = {"smollm2-math": "smollm2-math-arbitration"}


def _folder(pair: str, what: str) -> Path:
    if pair not in REPLAY_ASSETS:
        have = ", ".join(sorted(REPLAY_ASSETS))
        raise SpecGymError(
            f"no {what} is bundled for pair {pair!r} (bundled: {have}); pass a file of your own "
            "(python -m experiments.record_traces / benchmark cost make them)"
        )
    return BUNDLED / REPLAY_ASSETS[pair][0]


def bundled_trace(pair: str, split: str, width: int) -> Path:
    """The bundled trace of ``pair`` for ``split`` recorded at tree ``width`` (``w{W}_d{D}_{split}.npz``:
    an env replays it at any ``max_depth`` up to D)."""
    folder = _folder(pair, "trace")
    found = sorted(folder.glob(f"w{width}_d*_{split}.npz"))
    if not found:
        have = sorted(p.stem for p in folder.glob("*.npz"))
        raise SpecGymError(
            f"no bundled trace of {pair} at width={width}, split={split!r} (bundled: {', '.join(have)}); "
            f"pass width= and split= of one of those, or traces=FILE.npz from python -m experiments.record_traces"
        )
    return found[0]


def bundled_profile(pair: str) -> Path:
    """The bundled cost profile of ``pair`` (its file name names the device it was calibrated on)."""
    return _folder(pair, "cost profile") / REPLAY_ASSETS[pair][1]


def branch_record_name(task: str, k: int, max_new_tokens: int, split: str, n_items: int) -> str:
    """A branch record's file name (the data directory prefixes the pair's name)."""
    task = Path(task).stem if task.endswith(".jsonl") else task
    return f"arbitration_{task}_k{k}_m{max_new_tokens}_{split}_n{n_items}.npz"


def _bundled_records(pair: str, task: str, split: str, k: int, max_new_tokens: int) -> dict[int, Path]:
    """The bundled branch records of ``pair`` for these settings, by how many items each holds."""
    if pair not in BRANCH_ASSETS:
        return {}
    folder = BUNDLED / BRANCH_ASSETS[pair]
    stem = branch_record_name(task, k, max_new_tokens, split, 0).removesuffix("0.npz")
    counts = {p.name.removeprefix(stem).removesuffix(".npz"): p for p in folder.glob(f"{stem}*.npz")}
    return {int(n): p for n, p in counts.items() if n.isdigit()}


def bundled_branches(pair: str, task: str, split: str, k: int, max_new_tokens: int, n_items: int) -> Path | None:
    """The smallest bundled branch record of ``pair`` for these settings holding at least ``n_items``
    items (an env replays any first ``n`` of a record's items), or None."""
    fits = sorted((n, p) for n, p in _bundled_records(pair, task, split, k, max_new_tokens).items() if n >= n_items)
    return fits[0][1] if fits else None


def bundled_branch_items(pair: str, task: str, split: str, k: int, max_new_tokens: int) -> int:
    """How many items the largest bundled branch record of ``pair`` for these settings holds (0: none)."""
    return max(_bundled_records(pair, task, split, k, max_new_tokens), default=0)


def require_bundled_branches(pair: str, task: str, split: str, k: int, max_new_tokens: int, n_items: int) -> Path:
    """:func:`bundled_branches`, or a one-line error saying what is bundled (``traces="bundled"``)."""
    found = bundled_branches(pair, task, split, k, max_new_tokens, n_items)
    if found is None:
        folder = BUNDLED / BRANCH_ASSETS.get(pair, "-")
        have = sorted(p.name for p in folder.glob("*.npz")) or ["none"]
        raise SpecGymError(
            f"no bundled branch record of {pair} for task={task!r}, split={split!r}, k={k}, "
            f"max_new_tokens={max_new_tokens} with >= {n_items} items (bundled: {', '.join(have)}); "
            "pass settings of one of those, or traces=FILE.npz (python -m experiments.record_traces --env arbitration)"
        )
    return found
