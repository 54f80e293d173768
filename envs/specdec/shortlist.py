"""A draft output layer over a shortlist of the vocabulary (FR-Spec, Zhao et al. 2025).

A narrow draft spends most of a step in its output layer: SmolLM2's 49k-token vocabulary times a
256-wide hidden state is about 40% of the draft's step on CPU. A draft distilled from its target's
answers only ever predicts tokens the target produced, so its head can score just those (the
target's top-4 tokens over the training answers: 13k ids) and give every other token a logit that
softmax turns into probability 0. Greedy and sampling SpD stay lossless: verification never
depends on which tokens the draft can propose, only on the draft's probabilities of those it did.

The shortlist lives beside the draft's weights as ``shortlist.json``; :func:`maybe_apply` wraps the
head of any draft loaded from a directory that has one.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from envs.specdec.errors import MODEL_DIR_FIX, SpecGymError

FILENAME = "shortlist.json"
# Finite, so log-probs and entropies stay finite (0 * -inf is nan), yet exp() of it is 0 in every
# dtype, float16 included.
OFF_LIST_LOGIT = -1e4


class ShortlistHead(nn.Module):
    """Logits over ``ids`` from the wrapped head's rows; every other token gets ``OFF_LIST_LOGIT``."""

    def __init__(self, head: nn.Linear, ids: torch.Tensor) -> None:
        super().__init__()
        self.full = head  # kept: ``weight`` (its shape is the vocabulary size) and saving
        self.register_buffer("ids", ids.to(device=head.weight.device, dtype=torch.long))
        # buffers, not parameters: a copy of some of the head's rows, not more of the model
        self.register_buffer("rows", head.weight.detach()[self.ids].clone())
        self.register_buffer("bias", None if head.bias is None else head.bias.detach()[self.ids].clone())

    @property
    def weight(self) -> torch.Tensor:
        return self.full.weight

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        out = hidden.new_full((*hidden.shape[:-1], self.full.weight.shape[0]), OFF_LIST_LOGIT)
        out[..., self.ids] = F.linear(hidden, self.rows, self.bias)
        return out


def apply(model: nn.Module, ids: torch.Tensor) -> nn.Module:
    """Replace ``model``'s output layer with a :class:`ShortlistHead` over ``ids`` (in place)."""
    head = model.get_output_embeddings()
    if isinstance(head, ShortlistHead):
        head = head.full
    model.set_output_embeddings(ShortlistHead(head, ids))
    return model


def save(ids: torch.Tensor, directory: Path, source: str) -> Path:
    """Write ``shortlist.json`` (sorted ids and how they were chosen) into a draft directory."""
    path = Path(directory) / FILENAME
    path.write_text(json.dumps({"source": source, "size": int(ids.numel()), "ids": sorted(ids.tolist())}))
    return path


def read(path: Path, vocab_size: int) -> torch.Tensor:
    """The ids a ``shortlist.json`` lists, refused naming the file and the fix unless it is a JSON
    object whose ``ids`` are a non-empty list of token ids below ``vocab_size``."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        why = "not valid JSON; truncated?"
    else:
        ids = data.get("ids") if isinstance(data, dict) else None
        if isinstance(ids, list) and ids and all(type(i) is int and 0 <= i < vocab_size for i in ids):
            return torch.tensor(ids, dtype=torch.long)
        why = f"its 'ids' are not a non-empty list of token ids in 0..{vocab_size - 1}"
    raise SpecGymError(f"model directory {str(path.parent)!r} has a corrupt {str(path)!r} ({why}); {MODEL_DIR_FIX}")


def maybe_apply(model: nn.Module, directory: str | Path) -> nn.Module:
    """Apply the shortlist saved in ``directory``, if there is one."""
    path = Path(directory) / FILENAME
    if path.is_file():
        apply(model, read(path, model.get_output_embeddings().weight.shape[0]))
    return model
