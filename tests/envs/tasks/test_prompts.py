"""Prompt sources: categories from JSONL files, named mixes, reasoning-gym task names."""

from __future__ import annotations

import json

import pytest

from envs.specdec import SpecGymError
from envs.tasks.chat import KINDS
from envs.tasks.prompts import DEFAULT_TASKS, MIXES, load_prompt_set, load_prompts, reasoning_gym_prompts
from envs.tasks.splits import HELDOUT_SEED, TRAIN_SEED


def write(path, records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_a_spec_bench_file_keeps_each_prompts_category(tmp_path):
    path = write(
        tmp_path / "p.jsonl",
        [{"question_id": i, "category": c, "turns": [f"q{i}", "second turn"]} for i, c in enumerate("aabc")],
    )
    prompts = load_prompt_set(path, 10)
    assert prompts.texts == ["q0", "q1", "q2", "q3"] and prompts.categories == ["a", "a", "b", "c"]
    assert load_prompt_set(path, 2).categories == ["a", "a"]
    assert load_prompts(path, 10) == prompts.texts


def test_a_file_without_categories_has_none(tmp_path):
    path = write(tmp_path / "p.jsonl", [{"prompt": "x"}, {"prompt": "y"}])
    assert load_prompt_set(path, 5).categories is None


@pytest.mark.parametrize("category", [3, "", None, ["qa"]], ids=["number", "empty", "null", "list"])
def test_a_bad_or_missing_category_is_refused_naming_the_line(tmp_path, category):
    record = {"prompt": "y"} if category is None else {"prompt": "y", "category": category}
    path = write(tmp_path / "p.jsonl", [{"prompt": "x", "category": "qa"}, record])
    match = r"p.jsonl:2 has no 'category' but .*p.jsonl:1 has one" if category is None else r"p.jsonl:2: 'category'"
    with pytest.raises(SpecGymError, match=match):
        load_prompt_set(path, 5)


def test_the_default_mix_is_unchanged_and_names_its_tasks():
    prompts = load_prompt_set(None, 6)
    assert prompts.texts == reasoning_gym_prompts(6, HELDOUT_SEED)
    assert prompts.categories == [*DEFAULT_TASKS, *DEFAULT_TASKS[:2]]


def test_the_chat_mix_covers_chat_work_and_the_reasoning_mix_per_split():
    n = 2 * len(MIXES["chat"])
    train, heldout = load_prompt_set("mix:chat", n, TRAIN_SEED), load_prompt_set("mix:chat", n, HELDOUT_SEED)
    assert set(train.categories) == set(KINDS) | set(DEFAULT_TASKS) and train.categories == heldout.categories
    assert not set(train.texts) & set(heldout.texts)  # the splits draw different prompts
    assert load_prompt_set("mix:chat", n, TRAIN_SEED) == train  # seeded: the same draw every time
    long = [t for t, c in zip(train.texts, train.categories, strict=True) if c == "long_context"]
    assert min(len(t) for t in long) > 2000  # long-context questions: a few thousand characters
    with pytest.raises(SpecGymError, match="unknown prompt mix 'nosuch'; choose one of mix:chat"):
        load_prompt_set("mix:nosuch", 3)
    # fewer prompts than the mix has chat kinds draw no reasoning-gym question (train checks mix:chat with 1)
    assert load_prompt_set("mix:chat", 1, TRAIN_SEED).texts == train.texts[:1]


def test_the_shipped_spec_bench_style_file_has_8_prompts_in_each_category():
    from collections import Counter
    from pathlib import Path

    path = Path(__file__).resolve().parents[3] / "experiments" / "prompts" / "spec_bench_style.jsonl"
    prompts = load_prompt_set(str(path), 100)
    assert Counter(prompts.categories) == dict.fromkeys(
        ("mt_bench", "translation", "summarization", "qa", "math_reasoning", "rag"), 8
    )
    rag = [t for t, c in zip(prompts.texts, prompts.categories, strict=True) if c == "rag"]
    assert max(len(t) for t in rag) > 4000  # long contexts
