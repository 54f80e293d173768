"""Held-out quality of a draft: exact mean accepted length of greedy chain SpD, and forward times."""

from __future__ import annotations

import torch


@torch.inference_mode()
def match_runs(draft, prompt: list[int], answer: list[int]) -> list[int]:
    """For each answer position, how many draft greedy tokens in a row match the answer.

    One teacher-forced pass suffices: a draft chain started at position p proposes its j-th
    token from the true prefix whenever its first j-1 tokens matched.
    """
    ids = torch.tensor([prompt + answer])
    logits = draft(input_ids=ids).logits[0, len(prompt) - 1 : -1]
    hits = (logits.argmax(-1) == torch.tensor(answer)).tolist()
    runs = [0] * (len(answer) + 1)
    for p in range(len(answer) - 1, -1, -1):
        runs[p] = runs[p + 1] + 1 if hits[p] else 0
    return runs[:-1]


def accepted_lengths(runs: list[int], k: int) -> list[int]:
    """Tokens produced by each cycle of greedy chain SpD with draft length k (matches + 1)."""
    cycles, p = [], 0
    while p < len(runs):
        produced = min(min(runs[p], k) + 1, len(runs) - p)
        cycles.append(produced)
        p += produced
    return cycles


def acceptance_table(draft, samples: list[dict], ks: range = range(1, 9)) -> dict:
    """Mean accepted length per k over all held-out cycles, overall and per source."""
    runs = [(s["source"], match_runs(draft, s["prompt"], s["answer"])) for s in samples if s["answer"]]
    table: dict = {"overall": {}, "by_source": {}}
    for k in ks:
        tokens = cycles = 0
        per: dict[str, list[int]] = {}
        for source, r in runs:
            lengths = accepted_lengths(r, k)
            tokens += sum(lengths)
            cycles += len(lengths)
            acc = per.setdefault(source, [0, 0])
            acc[0] += sum(lengths)
            acc[1] += len(lengths)
        table["overall"][k] = tokens / cycles
        for source, (t, c) in per.items():
            table["by_source"].setdefault(source, {})[k] = t / c
    hits = sum(sum(1 for x in r if x > 0) for _, r in runs)
    table["top1_agreement"] = hits / sum(len(r) for _, r in runs)
    return table


def timing(draft, target, rounds: int = 3) -> dict:
    """Per-token forward time (ms, median, context 200) of draft and target, measured together."""
    from envs.pairs.timing import forward_latency_ms

    forward_latency_ms(target, 200, 1, repeats=3)  # page in weights, warm the kernels
    forward_latency_ms(draft, 200, 1, repeats=3)
    draft_ms = min(forward_latency_ms(draft, 200, 1, repeats=15) for _ in range(rounds))
    target_ms = min(forward_latency_ms(target, 200, 1, repeats=15) for _ in range(rounds))
    return {
        "draft_ms": draft_ms,
        "target_ms": target_ms,
        "ratio": draft_ms / target_ms,
        "context": 200,
        "threads": torch.get_num_threads(),
    }
