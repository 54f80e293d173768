"""The draft model: a narrow Llama with the target's vocabulary and an SVD-initialised embedding."""

from __future__ import annotations

import torch

from envs.pairs.distill.config import DraftConfig


def make_draft(target, cfg: DraftConfig):
    """A small Llama with the target's vocabulary and special tokens; its tied embedding is the
    target's, projected onto the embedding's top principal directions (random layers: a
    projection of the target's layers onto that subspace does not work, its residual stream
    lives largely outside it)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tc = target.config
    config = LlamaConfig(
        vocab_size=tc.vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        head_dim=cfg.head_dim,
        max_position_embeddings=tc.max_position_embeddings,
        rms_norm_eps=tc.rms_norm_eps,
        rope_parameters=dict(tc.rope_parameters),
        tie_word_embeddings=True,
        bos_token_id=tc.bos_token_id,
        eos_token_id=tc.eos_token_id,
        pad_token_id=tc.pad_token_id,
    )
    draft = LlamaForCausalLM(config)
    embedding = target.get_input_embeddings().weight.float()
    with torch.no_grad():
        draft.model.embed_tokens.weight.copy_(embedding @ embedding_basis(embedding, cfg.hidden_size))
    draft.tie_weights()
    return draft


def embedding_basis(embedding: torch.Tensor, width: int) -> torch.Tensor:
    """(d_target, width) orthonormal basis: the embedding's top right singular directions.

    With tied weights the target's logits are h . e; projecting both onto this subspace keeps
    those dot products as well as any ``width``-dim linear map can.
    """
    _, _, vh = torch.linalg.svd(embedding, full_matrices=False)
    return vh[:width].T.contiguous()


def param_count(model) -> int:
    """Number of distinct parameters (tied weights counted once)."""
    return sum(p.numel() for p in model.parameters())
