"""Training rows and batches from the corpus (each batch derived from the step number, so a resumed run
sees the same data order)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch


def training_rows(samples: list[dict]) -> list[dict]:
    """Per sample: full token ids and the answer targets they carry."""
    rows = []
    for s in samples:
        if not s["answer"]:
            continue
        rows.append(
            {
                "ids": s["prompt"] + s["answer"],
                "start": len(s["prompt"]) - 1,
                "topk_logp": s["topk_logp"],
                "topk_ids": s["topk_ids"],
            }
        )
    return rows


def make_batches(rows: list[dict], batch_size: int) -> list[list[int]]:
    """Fixed batches of similar-length rows (less padding); their order is shuffled per epoch."""
    order = sorted(range(len(rows)), key=lambda i: (len(rows[i]["ids"]), i))
    return [order[j : j + batch_size] for j in range(0, len(order), batch_size)]


def batch_stream(n_batches: int, seed: int, start_step: int) -> Iterator[int]:
    """Batch indices for steps start_step, start_step+1, ...: a seeded shuffle per epoch."""
    step = 0
    epoch = 0
    while True:
        perm = torch.randperm(n_batches, generator=torch.Generator().manual_seed(seed + epoch))
        for b in perm.tolist():
            if step >= start_step:
                yield b
            step += 1
        epoch += 1


def collate(rows: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ids/mask, flat (batch, position) indices of the answer targets, and of the
    prompt positions (whose next prompt token is a cheap extra language-modelling target)."""
    width = max(len(r["ids"]) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    b_idx, p_idx, logp, top, pb_idx, pp_idx = [], [], [], [], [], []
    for i, r in enumerate(rows):
        n = len(r["ids"])
        ids[i, :n] = torch.tensor(r["ids"])
        mask[i, :n] = 1
        count = r["topk_ids"].shape[0]
        b_idx.append(torch.full((count,), i))
        p_idx.append(torch.arange(r["start"], r["start"] + count))
        logp.append(r["topk_logp"].float())
        top.append(r["topk_ids"].long())
        pb_idx.append(torch.full((r["start"],), i))
        pp_idx.append(torch.arange(r["start"]))
    pb, pp = torch.cat(pb_idx), torch.cat(pp_idx)
    return {
        "ids": ids,
        "mask": mask,
        "b": torch.cat(b_idx),
        "p": torch.cat(p_idx),
        "logp": torch.cat(logp),
        "top": torch.cat(top),
        "pb": pb,
        "pp": pp,
        "pnext": ids[pb, pp + 1],
    }


def answer_shortlist(samples: list[dict], top: int) -> torch.Tensor:
    """Sorted ids of every answer token and every token the target ranked in its top ``top``."""
    parts = [s["topk_ids"][:, :top].flatten().long() for s in samples if s["answer"]]
    parts += [torch.tensor(s["answer"]) for s in samples if s["answer"]]
    return torch.unique(torch.cat(parts))


def training_vocabulary(rows: list[dict]) -> torch.Tensor:
    """Sorted ids of every token in any answer's top-k or any sequence: all the loss looks at."""
    parts = [r["topk_ids"].flatten().long() for r in rows]
    parts += [torch.tensor(r["ids"]) for r in rows]
    return torch.unique(torch.cat(parts))


def copy_batch(rows: list[dict], span: int, gen: torch.Generator) -> torch.Tensor:
    """Each row's random ``span``-token window, written twice: (batch, 2 * span) ids."""
    out = []
    for r in rows:
        ids = torch.tensor(r["ids"])
        width = min(span, len(ids))
        begin = int(torch.randint(0, len(ids) - width + 1, (1,), generator=gen))
        window = ids[begin : begin + width]
        if width < span:  # short rows: repeat the window to fill the span
            window = window.repeat(math.ceil(span / width))[:span]
        out.append(torch.cat([window, window]))
    return torch.stack(out)
