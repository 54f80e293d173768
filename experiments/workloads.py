"""Workloads: the category of each prompt in a trace (a Spec-Bench file's ``category``, a named
mix's kinds, reasoning-gym task names), and results grouped by it.

The categories live in the trace's meta (``categories``: one per prompt, in prompt order), so a
replayed evaluation groups exactly the prompts that were recorded.
"""

from __future__ import annotations

from envs.specdec.errors import SpecGymError


def category_meta(categories: list[str] | None) -> dict:
    """What a trace's meta says of its prompts' categories: nothing when the prompts name none."""
    return {"categories": list(categories)} if categories else {}


def trace_categories(meta: dict, n_prompts: int, path: str = "the trace") -> list[str] | None:
    """The categories a trace's meta holds (None when it holds none); a list that does not fit
    its prompts is refused, naming the fix."""
    categories = meta.get("categories")
    if categories is None:
        return None
    if (
        not isinstance(categories, list)
        or len(categories) != n_prompts
        or not all(isinstance(c, str) and c for c in categories)
    ):
        raise SpecGymError(
            f"{path}'s meta 'categories' must list one non-empty string per prompt ({n_prompts}); "
            "record it again with python -m experiments.record_traces"
        )
    return categories


def groups(categories: list[str]) -> dict[str, list[int]]:
    """Prompt indices by category, categories in order of first appearance."""
    out: dict[str, list[int]] = {}
    for i, c in enumerate(categories):
        out.setdefault(c, []).append(i)
    return out
