"""``build_draft``: the whole recipe, resumable, into a draft directory."""

from __future__ import annotations

import datetime
import json
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from envs.pairs.distill.card import model_card, save_draft
from envs.pairs.distill.config import EOS_FALLBACK, TOP_K, DraftConfig
from envs.pairs.distill.corpus import build_corpus
from envs.pairs.distill.data import answer_shortlist, training_rows
from envs.pairs.distill.evaluate import acceptance_table, timing
from envs.pairs.distill.model import make_draft, param_count
from envs.pairs.distill.prompts import collect_prompts, heldout_plan, train_plan
from envs.pairs.distill.train import train
from envs.specdec import shortlist
from envs.specdec.files import staged_dir
from envs.specdec.pair import resolve_dtype


def build_draft(
    target_dir: Path,
    out_dir: Path,
    *,
    seed: int = 0,
    steps: int = 600,
    progress: bool = True,
    config: DraftConfig | None = None,
) -> Path:
    """Distil a draft from the target at ``target_dir`` into ``out_dir`` (skipped if complete).

    Intermediate state (corpus, held-out answers, checkpoint) lives in ``<out_dir>-build`` and
    is reused, so an interrupted build resumes and a retrain skips corpus generation.
    """
    from envs.pairs.smollm2 import load_model

    target_dir, out_dir = Path(target_dir), Path(out_dir)
    if is_complete(out_dir):
        return out_dir
    cfg = config or DraftConfig()
    torch.manual_seed(seed)
    build = out_dir.with_name(out_dir.name + "-build")
    build.mkdir(parents=True, exist_ok=True)
    answer_dtype = resolve_dtype(cfg.answer_dtype, torch.device("cpu"))
    dtype_name = str(answer_dtype).removeprefix("torch.")
    target, tokenizer = load_model(target_dir, answer_dtype, role="target")
    walls: dict[str, float] = {}

    heldout_prompts = collect_prompts(heldout_plan())
    plan = train_plan(seed, cfg.corpus_scale)
    train_prompts = collect_prompts(plan, exclude={p for _, p in heldout_prompts})
    corpus, walls["corpus"] = build_corpus(
        target,
        tokenizer,
        train_prompts,
        build / f"corpus-seed{seed}-{dtype_name}.pt",
        cfg,
        "target answers (train)",
        progress,
    )
    heldout, walls["heldout_answers"] = build_corpus(
        target,
        tokenizer,
        heldout_prompts,
        build / f"heldout-{dtype_name}.pt",
        cfg,
        "target answers (held-out)",
        progress,
    )

    target.float()  # the SVD init and the timing below work in float32
    draft = make_draft(target, cfg)
    rows = training_rows(corpus)
    ckpt = build / f"checkpoint-seed{seed}-steps{steps}.pt"
    pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else EOS_FALLBACK
    walls["training"] = train(draft, rows, cfg, steps, seed, ckpt, pad_id, progress)

    # staged: a killed save leaves only a .part folder, which the next build removes
    with staged_dir(out_dir) as tmp:
        save_draft(draft, target_dir, tmp)
        short = answer_shortlist(corpus, cfg.shortlist_top) if cfg.shortlist_top > 0 else None
        if short is not None:
            shortlist.save(short, tmp, f"target top-{cfg.shortlist_top} over the training answers")
        saved, _ = load_model(tmp, role="draft")  # evaluate what was saved (float16 weights, read as float32)
        quality = acceptance_table(saved, heldout)
        quality.update(n_prompts=len(heldout), n_tokens=sum(len(s["answer"]) for s in heldout))
        recipe = {
            "command": " ".join(["python -m experiments.build_pair", *sys.argv[1:]])
            if sys.argv[0].endswith("build_pair.py")
            else " ".join(sys.argv),
            "seed": seed,
            "steps": steps,
            "config": asdict(cfg),
            "draft": {
                **{
                    k: getattr(saved.config, k)
                    for k in (
                        "hidden_size",
                        "num_hidden_layers",
                        "intermediate_size",
                        "num_attention_heads",
                        "num_key_value_heads",
                        "vocab_size",
                    )
                },
                "num_layers": saved.config.num_hidden_layers,
                "params": param_count(saved),
                "fp16_megabytes": param_count(saved) * 2 / 1e6,
            },
            "data": {
                "train_plan": plan,
                "heldout_plan": heldout_plan(),
                "n_train_prompts": len(corpus),
                "n_train_tokens": sum(len(s["answer"]) for s in corpus),
                "top_k": TOP_K,
                "answer_dtype": dtype_name,
                "shortlist_size": None if short is None else int(short.numel()),
                "target": str(target_dir),
            },
            "quality": quality,
            "timing": {**timing(saved.to(answer_dtype), target.to(answer_dtype)), "dtype": dtype_name},
            "wall_seconds": walls,
            "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "complete": True,
        }
        (tmp / "README.md").write_text(model_card(recipe))
        (tmp / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")
    if progress:
        print(
            f"draft saved to {out_dir}: mean accepted length at k=4 "
            f"{quality['overall'][4]:.2f}, draft/target time {recipe['timing']['ratio']:.3f}"
        )
    return out_dir


def is_complete(draft_dir: Path) -> bool:
    """True when ``draft_dir`` holds a finished draft build (weights, tokenizer, recipe)."""
    needed = ("config.json", "model.safetensors", "tokenizer.json", "recipe.json")
    if not all((draft_dir / n).is_file() for n in needed):
        return False
    try:
        return json.loads((draft_dir / "recipe.json").read_text()).get("complete") is True
    except (OSError, json.JSONDecodeError, AttributeError):
        return False
