"""Math tasks with verifiable answers, for Arbitration and the ``gsm`` pair.

Sources: a reasoning-gym generator (``chain_sum``, ``basic_arithmetic``, ``gsm_symbolic``, ...;
scored by the generator's own ``score_answer``), or a GSM8K-format JSONL file (``question`` and
``answer`` ending ``#### N``; scored by numeric equality). Every worked solution ends in
GSM8K's ``#### answer`` line, and completions are scored on what follows the last ``####``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from envs.specdec.errors import SpecGymError
from envs.tasks.jsonl import read_jsonl

ANSWER_MARK = "####"
# The ``gsm`` pair's task: three or four 1-2 digit terms (a 2-term space of 20k problems would
# put nearly every held-out item into a large training set).
GENERATOR_CONFIGS: dict[str, dict[str, Any]] = {
    "chain_sum": {"min_terms": 3, "max_terms": 4, "min_digits": 1, "max_digits": 2},
}
# A generator at another difficulty, under its own task name: name -> (generator, its config).
# ``chain_sum_2d``: 3-4 terms of 2 digits, the task of the ``smollm2-math`` pilot
# (docs/findings/smollm2_math_pilot.md; too hard for the fine-tuned target, which now uses chain_sum).
TASK_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "chain_sum_2d": ("chain_sum", {"min_terms": 3, "max_terms": 4, "min_digits": 2, "max_digits": 2}),
}


def generator_of(task: str) -> tuple[str, dict[str, Any]]:
    """The reasoning-gym generator behind a task name and the config it is created with."""
    return TASK_VARIANTS.get(task, (task, GENERATOR_CONFIGS.get(task, {})))


@dataclass(frozen=True)
class MathItem:
    """One question, its reference answer, and a worked solution ending ``#### answer``."""

    question: str
    answer: str
    solution: str
    entry: dict | None = field(default=None, compare=False)  # the reasoning-gym entry its scorer reads


def prompt_text(question: str) -> str:
    """What the models see; the solution follows it directly."""
    return f"{question}\n"


def chain_solution(expression: str) -> tuple[str, str]:
    """Left-to-right worked solution of ``a op b op c ...`` (``+``/``-`` only) and its answer."""
    parts = expression.split()
    value = int(parts[0])
    lines = []
    for op, term in zip(parts[1::2], parts[2::2], strict=True):
        new = value + int(term) if op == "+" else value - int(term)
        lines.append(f"{value} {op} {term} = {new}")
        value = new
    return "\n".join(lines + [f"{ANSWER_MARK} {value}"]), str(value)


def _solution(generator: str, entry: dict) -> str:
    meta = entry.get("metadata", {})
    if generator == "chain_sum":
        return chain_solution(meta["expression"])[0]
    if "answer_cot" in meta:
        return str(meta["answer_cot"]).strip()
    return f"{ANSWER_MARK} {entry['answer']}"


@lru_cache(maxsize=8)
def _generator(task: str):
    """A reasoning-gym dataset object, for its ``score_answer``."""
    import reasoning_gym

    generator, config = generator_of(task)
    return reasoning_gym.create_dataset(generator, size=1, seed=0, **config)


def generator_items(task: str, n: int, seed: int) -> list[MathItem]:
    """``n`` items of a reasoning-gym generator; item ``i`` depends on ``seed + i`` only."""
    import reasoning_gym

    generator, config = generator_of(task)
    try:
        data = reasoning_gym.create_dataset(generator, size=n, seed=seed, **config)
    except (KeyError, ValueError) as exc:
        raise SpecGymError(f"unknown reasoning-gym task {task!r} ({exc}); see reasoning_gym.factory") from None
    return [
        MathItem(question=x["question"], answer=str(x["answer"]), solution=_solution(generator, x), entry=x)
        for x in data
    ]


def jsonl_items(path: str | Path, n: int | None = None) -> list[MathItem]:
    """GSM8K-format items: ``question`` and ``answer`` whose last line is ``#### N``."""
    items = []
    for where, record in read_jsonl(path, "task"):
        answer = extract_answer(str(record.get("answer", "")))
        if not isinstance(record.get("question"), str) or answer is None:
            raise SpecGymError(f"{where}: needs 'question' and an 'answer' ending '#### N' (GSM8K format)")
        items.append(MathItem(record["question"], answer, str(record["answer"]).strip()))
        if n is not None and len(items) >= n:
            break
    if not items:
        raise SpecGymError(f"{path} holds no items")
    return items


def load_items(task: str, n: int, seed: int) -> list[MathItem]:
    """A ``.jsonl`` path (GSM8K format) or a reasoning-gym task name."""
    if task.endswith(".jsonl"):
        return jsonl_items(task, n)
    return generator_items(task, n, seed)


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def extract_answer(text: str) -> str | None:
    """The answer after the last ``####`` (commas and a trailing period dropped), else None."""
    if ANSWER_MARK not in text:
        return None
    tail = text.rsplit(ANSWER_MARK, 1)[1].strip().splitlines()
    if not tail:
        return None
    return tail[0].strip().rstrip(".").replace(",", "") or None


def score(item: MathItem, completion: str) -> float:
    """Correctness of a completion in [0, 1]: the generator's own scorer, else numeric equality."""
    answer = extract_answer(completion)
    if answer is None:
        return 0.0
    if item.entry is not None:
        task = item.entry.get("metadata", {}).get("source_dataset")
        if task:
            return float(_generator(task).score_answer(answer, item.entry))
    try:
        return float(abs(float(answer) - float(item.answer.replace(",", ""))) < 1e-6)
    except ValueError:
        return float(answer == item.answer)


def is_correct(item: MathItem, completion: str) -> bool:
    """Exactly right: full marks from the scorer (reasoning-gym gives partial credit to near misses,
    e.g. 2/3 for "210" against 21; accuracy counts only full marks)."""
    return score(item, completion) >= 1.0
