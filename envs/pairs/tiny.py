"""``tiny-random``: a Llama pair built from a config in seconds, for tests and smoke runs.

The draft shares the target's embeddings, first layer(s) and head (a layer-skip draft), and
the target's extra layers write into the residual stream at a reduced scale, so the two
agree often enough (mean accepted length ~2-2.7 at k=4) to exercise acceptance, rejection
and bonus paths while still disagreeing at many positions.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from envs.specdec.pair import ModelPair

EOS = "<|endoftext|>"


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level tokenizer (256 symbols + EOS) that needs no download."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    vocab[EOS] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS)


def tiny_config(
    vocab_size: int, layers: int, hidden: int = 64, max_positions: int = 512, eos: int | None = None
) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        initializer_range=0.2,  # peaky logits: random-init models are otherwise near-uniform
        tie_word_embeddings=False,
        eos_token_id=eos,
        bos_token_id=None,
        pad_token_id=None,
    )


def tiny_random_pair(
    seed: int = 0,
    *,
    vocab_size: int | None = None,
    target_layers: int = 2,
    draft_layers: int = 1,
    hidden: int = 64,
    residual_scale: float = 0.3,
    eos: bool = True,
    dtype: torch.dtype = torch.float32,
    max_positions: int = 512,
) -> ModelPair:
    """Random target plus a layer-skip draft; ``vocab_size=None`` uses the byte tokenizer.

    A custom ``vocab_size`` gives a pair without tokenizer (token-id prompts), used by the
    statistical tests that need a small vocabulary. ``eos=False`` gives a pair that never
    stops early (its last id is an ordinary token), for long lossless checks.
    """
    tokenizer = byte_tokenizer() if vocab_size is None else None
    vocab = len(tokenizer) if tokenizer is not None else vocab_size
    eos_id = vocab - 1 if eos else None
    torch.manual_seed(seed)
    target = LlamaForCausalLM(tiny_config(vocab, target_layers, hidden, max_positions, eos_id)).to(dtype)
    draft = LlamaForCausalLM(tiny_config(vocab, draft_layers, hidden, max_positions, eos_id)).to(dtype)
    with torch.no_grad():
        for layer in target.model.layers[draft_layers:]:
            layer.self_attn.o_proj.weight.mul_(residual_scale)
            layer.mlp.down_proj.weight.mul_(residual_scale)
    state = {k: v for k, v in target.state_dict().items() if k in draft.state_dict()}
    draft.load_state_dict(state)
    for model in (target, draft):
        model.generation_config.eos_token_id = eos_id
        model.generation_config.pad_token_id = vocab - 1
    if tokenizer is not None and not eos:
        tokenizer.eos_token = None
    return ModelPair(
        target=target,
        draft=draft,
        tokenizer=tokenizer,
        name="tiny-random",
        info={"seed": seed, "target_layers": target_layers, "draft_layers": draft_layers, "hidden": hidden},
    )
