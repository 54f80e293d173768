"""Distillation losses: hard and soft cross-entropy on the target's answers, prompt and copy terms."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def distill_loss(
    draft,
    batch: dict[str, torch.Tensor],
    soft_weight: float,
    vocab: torch.Tensor | None = None,
    prompt_weight: float = 0.0,
) -> tuple[torch.Tensor, float]:
    """Hard CE on the target's greedy token + soft CE on its top-k (+ ``prompt_weight`` times
    next-token CE on the prompt text); returns (loss, top-1 agreement on answers).

    The vocabulary projection, most of a narrow draft's compute, runs only where a loss lives
    and, given ``vocab`` (sorted ids), only over those tokens.
    """
    hidden = draft.model(input_ids=batch["ids"], attention_mask=batch["mask"]).last_hidden_state
    weight = draft.lm_head.weight if vocab is None else draft.lm_head.weight[vocab]

    def log_probs(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = h @ weight.T
        return logits, torch.log_softmax(logits.float(), dim=-1)

    def index(ids: torch.Tensor) -> torch.Tensor:
        return ids if vocab is None else torch.searchsorted(vocab, ids)

    logits, logq = log_probs(hidden[batch["b"], batch["p"]])
    top = index(batch["top"])
    greedy = top[:, 0]
    hard = F.nll_loss(logq, greedy)
    soft = -(batch["logp"].exp() * logq.gather(1, top)).sum(-1).mean()
    loss = (1 - soft_weight) * hard + soft_weight * soft
    if prompt_weight > 0 and batch["pb"].numel():
        _, logq_prompt = log_probs(hidden[batch["pb"], batch["pp"]])
        loss = loss + prompt_weight * F.nll_loss(logq_prompt, index(batch["pnext"]))
    acc = (logits.argmax(-1) == greedy).float().mean().item()
    return loss, acc


def copy_loss(draft, ids: torch.Tensor, vocab: torch.Tensor | None) -> torch.Tensor:
    """Next-token CE on the second copy (from its second token on: the first is unknowable)."""
    span = ids.shape[1] // 2
    hidden = draft.model(input_ids=ids).last_hidden_state[:, span:-1]
    weight = draft.lm_head.weight if vocab is None else draft.lm_head.weight[vocab]
    logits = hidden.reshape(-1, hidden.shape[-1]) @ weight.T
    labels = ids[:, span + 1 :].reshape(-1)
    labels = labels if vocab is None else torch.searchsorted(vocab, labels)
    return F.cross_entropy(logits.float(), labels)
