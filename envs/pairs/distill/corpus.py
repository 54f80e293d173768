"""The distillation corpus: the target's greedy answers to the prompts, with its top-k log-probs."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from envs.pairs.distill.config import EOS_FALLBACK, TOP_K, DraftConfig
from envs.pairs.training import save_atomic


class TopKRecorder:
    """A logits processor that records the target's top-k log-probs at every greedy step."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.values: list[torch.Tensor] = []
        self.indices: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(scores.float(), dim=-1)
        values, indices = logp.topk(self.k, dim=-1)
        self.values.append(values.half())
        self.indices.append(indices.int())
        return scores


def chat_ids(tokenizer, prompt: str) -> list[int]:
    """Token ids of one user turn in the chat template, ready for the assistant's answer."""
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True
    )
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return list(ids)


def left_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ids and attention mask for a batch of prompts."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(row)
        mask[i, width - len(row) :] = 1
    return ids, mask


@torch.inference_mode()
def answer_batch(target, prompts: list[list[int]], eos_id: int, max_new_tokens: int, top_k: int = TOP_K) -> list[dict]:
    """Greedy target answers for a batch of prompt ids, with top-k log-probs per answer token."""
    from transformers import LogitsProcessorList

    ids, mask = left_pad(prompts, eos_id)
    recorder = TopKRecorder(top_k)
    out = target.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=eos_id,
        eos_token_id=eos_id,
        logits_processor=LogitsProcessorList([recorder]),
    )
    new = out[:, ids.shape[1] :]
    values = torch.stack(recorder.values, dim=1)
    indices = torch.stack(recorder.indices, dim=1)
    samples = []
    for row, prompt in enumerate(prompts):
        tokens = new[row].tolist()
        end = tokens.index(eos_id) + 1 if eos_id in tokens else len(tokens)
        samples.append(
            {
                "prompt": prompt,
                "answer": tokens[:end],
                "topk_logp": values[row, :end].clone(),
                "topk_ids": indices[row, :end].clone(),
            }
        )
    return samples


def build_corpus(
    target, tokenizer, prompts: list[tuple[str, str]], path: Path, cfg: DraftConfig, desc: str, progress: bool
) -> tuple[list[dict], float]:
    """Target answers to ``prompts`` and the seconds spent generating them (over all resumed
    runs); cached at ``path``, saved every few minutes and on interrupt, resumable."""
    from tqdm.auto import tqdm

    texts = [p for _, p in prompts]
    state = torch.load(path, weights_only=False) if path.exists() else {}
    if state.get("prompts") == texts and state.get("complete"):
        return [state["answers"][t] for t in texts], state.get("seconds", float("nan"))
    # Answers are cached per prompt text, so a larger ``corpus_scale`` reuses every answer made.
    answers: dict[str, dict] = state.get("answers", {})
    eos_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else EOS_FALLBACK
    encoded = [chat_ids(tokenizer, p) for _, p in prompts]
    # Similar lengths in one batch waste less compute on padding.
    order = sorted(range(len(prompts)), key=lambda i: (len(encoded[i]), i))
    todo = [i for i in order if texts[i] not in answers]
    batches = [todo[j : j + cfg.gen_batch_size] for j in range(0, len(todo), cfg.gen_batch_size)]
    began = last_save = time.monotonic()

    def save(**extra: object) -> None:
        seconds = state.get("seconds", 0.0) + time.monotonic() - began
        save_atomic({"answers": answers, "prompts": texts, "seconds": seconds, **extra}, path)

    bar = tqdm(total=len(prompts), initial=len(prompts) - len(todo), desc=desc, unit="prompt", disable=not progress)
    try:
        for batch in batches:
            made = answer_batch(target, [encoded[i] for i in batch], eos_id, cfg.max_new_tokens)
            for i, sample in zip(batch, made, strict=True):
                sample["source"], sample["text"] = prompts[i]
                answers[texts[i]] = sample
            bar.update(len(batch))
            if time.monotonic() - last_save > cfg.checkpoint_seconds:
                save()
                last_save = time.monotonic()
    except KeyboardInterrupt:
        save()
        bar.close()
        print(f"\ninterrupted: {len(answers)} answers kept in {path}; run again to resume", file=sys.stderr)
        raise
    bar.close()
    seconds = state.get("seconds", 0.0) + time.monotonic() - began
    save(complete=True)
    return [answers[t] for t in texts], seconds
