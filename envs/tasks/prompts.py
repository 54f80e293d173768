"""Prompts for decoding: seeded reasoning-gym questions, or a user's JSONL file.

JSONL formats read: MT-Bench / Spec-Bench (``turns``: the first turn is used), and any
record with a ``prompt``, ``question`` or ``instruction`` field (Alpaca adds ``input``).
"""

from __future__ import annotations

from pathlib import Path

from envs.specdec.errors import SpecGymError
from envs.tasks.jsonl import read_jsonl
from envs.tasks.math import load_items, prompt_text
from envs.tasks.splits import HELDOUT_SEED

DEFAULT_TASKS = ("gsm_symbolic", "basic_arithmetic", "chain_sum", "leg_counting")


def reasoning_gym_prompts(n: int, seed: int = HELDOUT_SEED, tasks: tuple[str, ...] = DEFAULT_TASKS) -> list[str]:
    """``n`` questions, drawn round-robin from the given reasoning-gym generators."""
    import reasoning_gym

    per_task = -(-n // len(tasks))
    pools = []
    for i, task in enumerate(tasks):
        try:
            pools.append([x["question"] for x in reasoning_gym.create_dataset(task, size=per_task, seed=seed + i)])
        except (KeyError, ValueError) as exc:
            raise SpecGymError(f"unknown reasoning-gym task {task!r} ({exc}); see reasoning_gym.factory") from None
    return [pools[j % len(pools)][j // len(pools)] for j in range(n)]


def _record_prompt(record: dict, where: str) -> str:
    if isinstance(record.get("turns"), list) and record["turns"]:
        return str(record["turns"][0])
    for key in ("prompt", "question", "instruction"):
        if isinstance(record.get(key), str):
            extra = record.get("input") if key == "instruction" else None
            return f"{record[key]}\n\n{extra}" if extra else record[key]
    raise SpecGymError(f"{where}: no 'turns', 'prompt', 'question' or 'instruction' field; add one")


def jsonl_prompts(path: str | Path, n: int | None = None) -> list[str]:
    """Prompts from a JSONL file (see the module docstring for the accepted fields)."""
    prompts = []
    for where, record in read_jsonl(path, "prompt"):
        prompts.append(_record_prompt(record, where))
        if n is not None and len(prompts) >= n:
            break
    if not prompts:
        raise SpecGymError(f"{path} holds no prompts")
    return prompts


def load_prompts(source: str | None, n: int, seed: int = HELDOUT_SEED) -> list[str]:
    """A ``.jsonl`` path, a comma-separated list of reasoning-gym task names, ``task:NAME`` (a math
    task's questions exactly as the ``gsm`` pair and Arbitration pose them), or the default mix."""
    if source is None:
        return reasoning_gym_prompts(n, seed)
    if source.startswith("task:"):
        return [prompt_text(x.question) for x in load_items(source.removeprefix("task:"), n, seed)]
    if source.endswith(".jsonl"):
        return jsonl_prompts(source, n)
    return reasoning_gym_prompts(n, seed, tuple(source.split(",")))
