"""AdamW with warm-up then cosine decay, and the training loop over the recipe's batches."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from envs.pairs.distill.config import DraftConfig
from envs.pairs.distill.data import batch_stream, collate, copy_batch, make_batches, training_vocabulary
from envs.pairs.distill.loss import copy_loss, distill_loss
from envs.pairs.training import resumable_training


def lr_lambda(cfg: DraftConfig, steps: int) -> Callable[[int], float]:
    """Linear warm-up, then cosine decay to ``min_lr_ratio`` of the peak."""

    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        t = (step - cfg.warmup_steps) / max(1, steps - cfg.warmup_steps)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

    return f


def make_optimizer(draft, cfg: DraftConfig, steps: int):
    """AdamW (no decay on norms; the tied embedding at ``embedding_lr_scale`` of the peak rate)
    with the warm-up + cosine schedule."""
    embedding = draft.get_input_embeddings().weight
    rest = [p for p in draft.parameters() if p is not embedding]
    groups = [
        {"params": [p for p in rest if p.ndim >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in rest if p.ndim < 2], "weight_decay": 0.0},
    ]
    if cfg.embedding_lr_scale > 0:
        groups.append({"params": [embedding], "weight_decay": cfg.weight_decay, "lr": cfg.lr * cfg.embedding_lr_scale})
    else:  # frozen: the target's projected token geometry stays as it is
        embedding.requires_grad_(False)
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98))
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg, steps))


def train(
    draft, rows: list[dict], cfg: DraftConfig, steps: int, seed: int, ckpt: Path, pad_id: int, progress: bool
) -> float:
    """Train ``draft`` for ``steps`` steps, resuming from ``ckpt``; returns training seconds."""
    opt, sched = make_optimizer(draft, cfg, steps)
    batches = make_batches(rows, cfg.batch_size)
    vocab = training_vocabulary(rows) if cfg.corpus_vocab_only else None
    stream: Iterator[int] | None = None

    def loss_at(step: int) -> tuple[torch.Tensor, dict[str, float]]:
        nonlocal stream
        if stream is None:  # the first step of this run: the checkpoint's step after a resume
            stream = batch_stream(len(batches), seed, step)
        chosen = [rows[i] for i in batches[next(stream)]]
        batch = collate(chosen, pad_id)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16_autocast):
            loss, acc = distill_loss(draft, batch, cfg.soft_weight, vocab, cfg.prompt_weight)
            if cfg.copy_weight > 0:
                gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
                copies = copy_batch(chosen, cfg.copy_span, gen)
                loss = loss + cfg.copy_weight * copy_loss(draft, copies, vocab)
        return loss, {"acc": acc}

    return resumable_training(
        draft,
        opt,
        sched,
        loss_at,
        steps=steps,
        ckpt=ckpt,
        desc="training draft",
        checkpoint_seconds=cfg.checkpoint_seconds,
        progress=progress,
    )
