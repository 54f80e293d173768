"""Fine-tuning both models: the LoRA adapter on the target, the draft's layers; one resumable loop."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from envs.pairs.distill.train import lr_lambda
from envs.pairs.gsm import collate
from envs.pairs.smollm2_math.config import MathRecipeConfig
from envs.pairs.smollm2_math.data import answer_loss, batch_rows
from envs.pairs.training import resumable_training


def add_adapter(base, config):
    """peft's ``get_peft_model(base, config)``, without the FutureWarning peft's own read of
    transformers' deprecated ``is_gradient_checkpointing`` raises on transformers 5.24."""
    from peft import get_peft_model

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(base, config)


def with_lora(base, cfg: MathRecipeConfig):
    """``base`` with a fresh LoRA adapter on ``cfg.lora_modules`` (peft; only the adapter trains)."""
    from peft import LoraConfig

    config = LoraConfig(
        r=cfg.lora_rank,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=0.0,  # no dropout: a resumed run then repeats the uninterrupted one exactly
        target_modules=list(cfg.lora_modules),
        task_type="CAUSAL_LM",
    )
    return add_adapter(base, config)


def freeze_embedding(draft) -> None:
    """Train every draft weight but the tied embedding its shortlist head reads."""
    draft.get_input_embeddings().weight.requires_grad_(False)


def train_stage(
    model,
    rows: list[tuple[list[int], list[int]]],
    cfg: MathRecipeConfig,
    *,
    steps: int,
    lr: float,
    seed: int,
    ckpt: Path,
    pad: int,
    desc: str,
    progress: bool,
    vocab: torch.Tensor | None = None,
) -> float:
    """Train ``model``'s trainable parameters for ``steps`` batches of answer-token cross-entropy
    (bf16 autocast), resuming from ``ckpt``; returns the training seconds."""
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model  # a peft model's LoRA-injected Llama
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg, steps))

    def loss_at(step: int) -> tuple[torch.Tensor, dict[str, float]]:
        ids, labels = collate([rows[i] for i in batch_rows(len(rows), cfg.batch_size, seed, step)], pad)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return answer_loss(lm, ids, labels, vocab), {}

    return resumable_training(
        model,
        opt,
        sched,
        loss_at,
        steps=steps,
        ckpt=ckpt,
        checkpoint_seconds=cfg.checkpoint_seconds,
        desc=desc,
        progress=progress,
        trainable_only=True,
    )
