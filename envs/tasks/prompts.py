"""Prompts for decoding: seeded reasoning-gym questions, a named mix, or a user's JSONL file.

JSONL formats read: MT-Bench / Spec-Bench (``turns``: the first turn is used), and any
record with a ``prompt``, ``question`` or ``instruction`` field (Alpaca adds ``input``). A
``category`` (Spec-Bench: ``mt_bench``, ``translation``, ``summarization``, ``qa``,
``math_reasoning``, ``rag``) is kept with each prompt when every record has one; evaluation then
reports each category as well as the whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from envs.specdec.errors import SpecGymError
from envs.tasks.chat import KINDS, chat_prompt
from envs.tasks.jsonl import read_jsonl
from envs.tasks.math import load_items, prompt_text
from envs.tasks.splits import HELDOUT_SEED

DEFAULT_TASKS = ("gsm_symbolic", "basic_arithmetic", "chain_sum", "leg_counting")
# named mixes (``mix:NAME``): the kinds drawn round-robin, each a chat template or a reasoning-gym task
MIXES = {"chat": (*KINDS, *DEFAULT_TASKS)}


@dataclass(frozen=True)
class PromptSet:
    """Prompt texts and, where the source names them, one category per prompt (else None)."""

    texts: list[str]
    categories: list[str] | None = None


def reasoning_gym_prompts(n: int, seed: int = HELDOUT_SEED, tasks: tuple[str, ...] = DEFAULT_TASKS) -> list[str]:
    """``n`` questions, drawn round-robin from the given reasoning-gym generators."""
    return _reasoning_gym(n, seed, tasks).texts


def _reasoning_gym(n: int, seed: int, tasks: tuple[str, ...]) -> PromptSet:
    import reasoning_gym

    if n == 0:  # a mix's first chat prompts need no question (reasoning-gym refuses a dataset of 0)
        return PromptSet([], [])
    per_task = -(-n // len(tasks))
    pools = []
    for i, task in enumerate(tasks):
        try:
            pools.append([x["question"] for x in reasoning_gym.create_dataset(task, size=per_task, seed=seed + i)])
        except (KeyError, ValueError) as exc:
            raise SpecGymError(f"unknown reasoning-gym task {task!r} ({exc}); see reasoning_gym.factory") from None
    order = [(j % len(pools), j // len(pools)) for j in range(n)]
    return PromptSet([pools[t][k] for t, k in order], [tasks[t] for t, _ in order])


def mix_prompts(name: str, n: int, seed: int = HELDOUT_SEED) -> PromptSet:
    """``n`` prompts of the named mix (:data:`MIXES`), its kinds drawn round-robin; the kind is the category."""
    if name not in MIXES:
        raise SpecGymError(f"unknown prompt mix {name!r}; choose one of {', '.join('mix:' + m for m in MIXES)}")
    kinds = MIXES[name]
    tasks = tuple(k for k in kinds if k not in KINDS)
    # the reasoning-gym share draws as the plain list of tasks would, in the same seed's stream
    questions = iter(_reasoning_gym(sum(kinds[j % len(kinds)] in tasks for j in range(n)), seed, tasks).texts)
    texts = [
        chat_prompt(kinds[j % len(kinds)], seed + j) if kinds[j % len(kinds)] in KINDS else next(questions)
        for j in range(n)
    ]
    return PromptSet(texts, [kinds[j % len(kinds)] for j in range(n)])


def _record_prompt(record: dict, where: str) -> str:
    if isinstance(record.get("turns"), list) and record["turns"]:
        return str(record["turns"][0])
    for key in ("prompt", "question", "instruction"):
        if isinstance(record.get(key), str):
            extra = record.get("input") if key == "instruction" else None
            return f"{record[key]}\n\n{extra}" if extra else record[key]
    raise SpecGymError(f"{where}: no 'turns', 'prompt', 'question' or 'instruction' field; add one")


def _record_category(record: dict, where: str) -> str | None:
    category = record.get("category")
    if category is not None and not (isinstance(category, str) and category.strip()):
        raise SpecGymError(f"{where}: 'category' must be a non-empty string, got {category!r}; fix or remove it")
    return category


def jsonl_prompt_set(path: str | Path, n: int | None = None) -> PromptSet:
    """Prompts from a JSONL file (see the module docstring for the accepted fields), with their
    categories when every record has one (None when none has; one that lacks it among others is refused)."""
    texts: list[str] = []
    categories: list[str | None] = []
    first: dict[bool, str] = {}  # where the first record with / without a category is
    for where, record in read_jsonl(path, "prompt"):
        texts.append(_record_prompt(record, where))
        categories.append(_record_category(record, where))
        first.setdefault(categories[-1] is not None, where)
        if n is not None and len(texts) >= n:
            break
    if not texts:
        raise SpecGymError(f"{path} holds no prompts")
    if len(first) == 2:
        raise SpecGymError(
            f"{first[False]} has no 'category' but {first[True]} has one; give every prompt a category or none"
        )
    return PromptSet(texts, categories if first.get(True) else None)  # type: ignore[arg-type]


def jsonl_prompts(path: str | Path, n: int | None = None) -> list[str]:
    """Prompts from a JSONL file (see the module docstring for the accepted fields)."""
    return jsonl_prompt_set(path, n).texts


def load_prompt_set(source: str | None, n: int, seed: int = HELDOUT_SEED) -> PromptSet:
    """A ``.jsonl`` path, ``mix:NAME`` (:data:`MIXES`), a comma-separated list of reasoning-gym task
    names, ``task:NAME`` (a math task's questions exactly as the ``gsm`` pair and Arbitration pose
    them), or the default mix; with categories (the file's, the mix's kinds, the task names)."""
    if source is None:
        return _reasoning_gym(n, seed, DEFAULT_TASKS)
    if source.startswith("task:"):
        task = source.removeprefix("task:")
        return PromptSet([prompt_text(x.question) for x in load_items(task, n, seed)], None)
    if source.startswith("mix:"):
        return mix_prompts(source.removeprefix("mix:"), n, seed)
    if source.endswith(".jsonl"):
        return jsonl_prompt_set(source, n)
    return _reasoning_gym(n, seed, tuple(source.split(",")))


def load_prompts(source: str | None, n: int, seed: int = HELDOUT_SEED) -> list[str]:
    """The texts of :func:`load_prompt_set`."""
    return load_prompt_set(source, n, seed).texts
