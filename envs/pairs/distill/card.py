"""Saving the draft and its model card (recipe, measured quality)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "special_tokens_map.json",
    "generation_config.json",
)


def copy_tokenizer_files(source: Path, dest: Path) -> None:
    """The tokenizer, chat template and generation settings of the model at ``source``."""
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copy2(source / name, dest / name)


def save_draft(draft, target_dir: Path, staging: Path) -> None:
    """Draft weights in float16 plus the target's tokenizer files, so the pair checks pass."""
    draft.to(torch.float16).save_pretrained(staging)
    draft.to(torch.float32)
    copy_tokenizer_files(target_dir, staging)


def model_card(recipe: dict) -> str:
    """README.md for the draft: what it is, how it was made, how good and fast it is."""
    q, t, d = recipe["quality"], recipe["timing"], recipe["draft"]
    rows = "\n".join(f"| {k} | {v:.3f} |" for k, v in q["overall"].items())
    by_source = "\n".join(f"| {s} | {v[4]:.3f} |" for s, v in sorted(q["by_source"].items()))
    return f"""# SpecGym draft for SmolLM2-135M-Instruct

A {d["num_layers"]}-layer, {d["hidden_size"]}-wide Llama ({d["params"] / 1e6:.1f}M parameters, float16
on disk) with the target's tokenizer (vocabulary {d["vocab_size"]}), distilled from the target's
greedy answers (computed in {recipe["data"].get("answer_dtype", "float32")}); its output layer scores
{recipe["data"].get("shortlist_size") or "all"} token ids (`shortlist.json`: the target's top-4 over its
training answers).
Built by `{recipe["command"]}` (seed {recipe["seed"]}, {recipe["steps"]} steps);
the full recipe, with every data source and seed, is in `recipe.json`.

## Quality on held-out prompts

{q["n_prompts"]} held-out prompts ({q["n_tokens"]} target tokens) from seeds no training prompt
used; the target answers greedily, at most {recipe["config"]["max_new_tokens"]} new tokens.
Top-1 agreement with the target's greedy token: {q["top1_agreement"]:.3f}.

Mean accepted length per cycle of greedy chain speculative decoding (matches + 1):

| k | mean accepted length |
|---|---|
{rows}

At k = 4, by source:

| source | mean accepted length |
|---|---|
{by_source}

## Speed

One forward of one token at context {t["context"]} (this build machine's CPU, {t.get("dtype", "float32")},
{t["threads"]} threads, median): draft {t["draft_ms"]:.1f} ms, target {t["target_ms"]:.1f} ms,
ratio {t["ratio"]:.3f}.

## Data and cost

{recipe["data"]["n_train_prompts"]} training prompts ({recipe["data"]["n_train_tokens"]} answer
tokens). Wall time: target answers {recipe["wall_seconds"]["corpus"]:.0f} s, training
{recipe["wall_seconds"]["training"]:.0f} s. The target, SmolLM2-135M-Instruct, is Apache-2.0.
"""
