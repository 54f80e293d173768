"""``build_math_pair``: the whole recipe, resumable, into ``<data dir>/pairs/smollm2-math``.

Stages, each skipped when its output is complete and resumed from its checkpoint (in
``build/``) when interrupted: (1) LoRA on the target -> ``weights/target-lora``; (2) the draft's
layers -> ``weights/draft-layers``; (3) ``target`` and ``draft`` assembled from them
(``weights.assemble``); (4) accuracy on validation and held-out items, then ``README.md`` and
``recipe.json`` (the completion marker, written last).
"""

from __future__ import annotations

import datetime
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from envs.pairs.smollm2_math.card import model_card
from envs.pairs.smollm2_math.config import TRAIN_SEED_BASE, MathRecipeConfig
from envs.pairs.smollm2_math.data import chat_rows, training_items
from envs.pairs.smollm2_math.train import freeze_embedding, train_stage, with_lora
from envs.pairs.smollm2_math.weights import (
    DRAFT_LAYERS,
    LAYERS_FILE,
    LORA,
    assemble,
    plain_model,
    save_draft_layers,
    save_lora,
)
from envs.specdec import shortlist
from envs.specdec.files import write_text_atomic
from envs.specdec.pair import load_tokenizer

PAIR = "smollm2-math"


def is_complete(pair_dir: Path) -> bool:
    """True when ``pair_dir`` holds a finished build (or an assembly of shipped weights)."""
    try:
        return json.loads((Path(pair_dir) / "recipe.json").read_text()).get("complete") is True
    except (OSError, json.JSONDecodeError, AttributeError):
        return False


def evaluate(target_dir: Path, draft_dir: Path, task: str, n: int, split: str, cfg: MathRecipeConfig, progress: bool):
    """Greedy accuracy of each model alone (prompts through the chat template) on ``n`` items of ``split``."""
    from envs.pairs.gsm import task_accuracy
    from envs.specdec.pair import ModelPair
    from envs.tasks.math import generator_items
    from envs.tasks.splits import split_seed

    pair = ModelPair.load(str(target_dir), str(draft_dir), device="cpu", dtype="fast", name=PAIR)
    items = generator_items(task, n, split_seed(split))
    return task_accuracy(pair, items, cfg.max_new_tokens, progress, chat=True) | {
        "split": split,
        "dtype": pair.dtype_name,
    }


def build_math_pair(
    pair_dir: Path,
    base_target: Path,
    base_draft: Path,
    *,
    seed: int = 0,
    progress: bool = True,
    config: MathRecipeConfig | None = None,
) -> tuple[Path, Path]:
    """Train (or resume) the adapter and the draft, assemble the pair into ``pair_dir/{target,draft}``,
    measure it and write its model card; returns the two paths."""
    pair_dir, base_target, base_draft = Path(pair_dir), Path(base_target), Path(base_draft)
    if is_complete(pair_dir):
        return pair_dir / "target", pair_dir / "draft"
    cfg = config or MathRecipeConfig()
    build, weights = pair_dir / "build", pair_dir / "weights"
    build.mkdir(parents=True, exist_ok=True)
    walls: dict[str, float] = {}
    began = time.monotonic()
    items = training_items(cfg)
    tokenizer = load_tokenizer(str(base_target), "target")
    rows = chat_rows(tokenizer, items)
    pad = tokenizer.convert_tokens_to_ids("<|im_end|>") if tokenizer.chat_template else tokenizer.eos_token_id
    walls["data"] = time.monotonic() - began

    if not (weights / LORA / "adapter_model.safetensors").is_file():
        torch.manual_seed(seed)
        target = with_lora(plain_model(base_target), cfg)
        walls["target"] = train_stage(
            target,
            rows,
            cfg,
            steps=cfg.target_steps,
            lr=cfg.target_lr,
            seed=seed,
            ckpt=build / f"target-lora-seed{seed}-steps{cfg.target_steps}.pt",
            pad=pad,
            desc="training target LoRA",
            progress=progress,
        )
        save_lora(target, weights / LORA)
        del target
    if not (weights / DRAFT_LAYERS / LAYERS_FILE).is_file():
        draft = plain_model(base_draft)
        freeze_embedding(draft)
        listed = base_draft / shortlist.FILENAME
        vocab = shortlist.read(listed, draft.config.vocab_size) if listed.exists() else None
        walls["draft"] = train_stage(
            draft,
            rows,
            cfg,
            steps=cfg.draft_steps,
            lr=cfg.draft_lr,
            seed=seed + 1,
            ckpt=build / f"draft-seed{seed}-steps{cfg.draft_steps}.pt",
            pad=pad,
            desc="training draft",
            progress=progress,
            vocab=vocab,
        )
        save_draft_layers(draft, weights / DRAFT_LAYERS)
    target_dir, draft_dir = assemble(weights, base_target, base_draft, pair_dir)

    quality = {
        split: evaluate(target_dir, draft_dir, cfg.task, n, split, cfg, progress)
        for split, n in (("validation", cfg.n_validation), ("heldout", cfg.n_heldout))
    }
    recipe = {
        "command": " ".join(["python -m experiments.build_pair", *sys.argv[1:]])
        if sys.argv[0].endswith("build_pair.py")
        else " ".join(sys.argv),
        "seed": seed,
        "config": asdict(cfg),
        "data": {
            "task": cfg.task,
            "train_seed_base": TRAIN_SEED_BASE,
            "n_train_items": len(rows),
            "n_train_answer_tokens": sum(len(s) for _, s in rows),
            "format": "chat template: question as the user turn, GSM8K worked solution ending '#### N' as the answer",
        },
        "base": {"target": str(base_target), "draft": str(base_draft)},
        "quality": quality,
        "quality_note": "accuracy = share of items with full marks from reasoning-gym's scorer; greedy",
        "wall_seconds": walls,
        "threads": torch.get_num_threads(),
        "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "complete": True,
    }
    write_text_atomic(pair_dir / "README.md", model_card(recipe))
    # the completion marker, written last and whole: until it is in place the build counts as unfinished
    write_text_atomic(pair_dir / "recipe.json", json.dumps(recipe, indent=2) + "\n")
    if progress:
        q = quality["heldout"]
        print(
            f"{PAIR} saved to {pair_dir}: held-out target accuracy {q['target_accuracy']:.3f}, draft "
            f"{q['draft_accuracy']:.3f}, draft-right-target-wrong {q['draft_right_target_wrong']:.3f}"
        )
    return target_dir, draft_dir
