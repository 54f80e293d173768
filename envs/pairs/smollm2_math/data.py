"""Training data: reasoning-gym items with GSM8K-format worked solutions, as chat turns.

Each row is (prompt ids, answer ids): the prompt is the question as one user turn of the chat
template up to the assistant's header (exactly what ``ModelPair.encode`` gives at run time),
the answer the worked solution ending ``#### N`` and the end-of-turn token. Loss is on the
answer only.
"""

from __future__ import annotations

import torch

from envs.pairs.smollm2_math.config import N_EXCLUDED, TRAIN_SEED_BASE, MathRecipeConfig
from envs.specdec.pair import encode_prompt
from envs.tasks.math import MathItem, generator_items, prompt_text
from envs.tasks.splits import SEEDS


def training_items(cfg: MathRecipeConfig, seed_base: int = TRAIN_SEED_BASE) -> list[MathItem]:
    """``cfg.n_train`` items from seeds ``seed_base + i``, minus every question that also occurs
    among the first ``N_EXCLUDED`` items of a split (train, validation, held-out), so no
    evaluation or environment item was trained on."""
    excluded = {x.question for seed in SEEDS.values() for x in generator_items(cfg.task, N_EXCLUDED, seed)}
    return [x for x in generator_items(cfg.task, cfg.n_train, seed_base) if x.question not in excluded]


def chat_rows(tokenizer, items: list[MathItem]) -> list[tuple[list[int], list[int]]]:
    """(prompt ids through the chat template, solution ids + end of turn) per item."""
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>") if tokenizer.chat_template else tokenizer.eos_token_id
    return [
        (
            encode_prompt(tokenizer, prompt_text(x.question)),
            tokenizer.encode(x.solution, add_special_tokens=False) + [eos],
        )
        for x in items
    ]


def batch_rows(n_rows: int, batch_size: int, seed: int, step: int) -> list[int]:
    """Row indices of the batch at ``step``: they depend on (seed, step) only, so a resumed run
    sees the same data order."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return torch.randint(n_rows, (batch_size,), generator=gen).tolist()


def answer_loss(lm, ids: torch.Tensor, labels: torch.Tensor, vocab: torch.Tensor | None = None) -> torch.Tensor:
    """Next-token cross-entropy at the answer positions (labels != -100) only: the output layer,
    49k wide, runs there alone. ``vocab`` (sorted ids): softmax over those tokens only (a draft's
    shortlist); a label outside it is skipped (its head can never propose it)."""
    hidden = lm.model(input_ids=ids).last_hidden_state[:, :-1]
    target = labels[:, 1:]
    weight = lm.get_output_embeddings().weight
    if vocab is not None:
        pos = torch.searchsorted(vocab, target.clamp(min=0))
        on_list = (target >= 0) & (vocab[pos.clamp(max=len(vocab) - 1)] == target)
        target = torch.where(on_list, pos, -100)
        weight = weight[vocab]
    where = target >= 0
    logits = hidden[where] @ weight.T
    return torch.nn.functional.cross_entropy(logits.float(), target[where])
