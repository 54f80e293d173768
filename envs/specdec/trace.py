"""Trace recording: every draft proposal from every prefix of the target's greedy output.

With greedy verification the output never depends on the drafting schedule, so for each
prompt we record the target's greedy output once and, at every position ``i`` (context =
prompt + output[:i]), the draft's top-W tree to ``max_depth`` levels (the first ``d`` levels
of that tree are exactly the depth-``d`` tree: levels grow without lookahead). Replay
(:mod:`envs.specdec.replay`) then reproduces any schedule without a model.

Recording is teacher forcing, not the SpD loop: one draft forward over prompt + output gives
every position's first level; each further level is one batched forward over a chunk of
positions with a 4D mask (each node sees its position's context and its own ancestors).
Node order, top-W selection and float32 scores mirror :class:`~envs.specdec.draft.Drafter`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import DynamicCache

from envs.specdec.cache import forward_with_cache, keep_positions
from envs.specdec.decoder import MAX_DEPTH, MAX_WIDTH, SpeculativeDecoder
from envs.specdec.draft import top_w_children
from envs.specdec.errors import SpecGymError
from envs.specdec.files import read_npz, sidecar_pair, write_atomic, write_text_atomic
from envs.specdec.pair import ModelPair
from envs.specdec.sampling import check_finite, log_probs
from envs.specdec.state import tree_attention_mask

TRACE_VERSION = 1
ARRAYS = (
    "prompt_tokens",
    "prompt_offsets",
    "output_tokens",
    "output_offsets",
    "eos_stop",
    "tree_tokens",
    "tree_parents",
    "tree_probs",
    "tree_entropies",
    "tree_cum_logprobs",
)
TREE_FIELDS = ("tokens", "parents", "probs", "entropies", "cum_logprobs")  # PromptTrace's tree arrays


@dataclass
class PromptTrace:
    """One prompt's slice of a trace; tree arrays are [len(output), max_depth, width]."""

    prompt: np.ndarray
    output: np.ndarray
    eos_stop: bool
    tokens: np.ndarray
    parents: np.ndarray  # creation-order index of the parent node (-1 = the context)
    probs: np.ndarray
    entropies: np.ndarray
    cum_logprobs: np.ndarray


@dataclass
class Trace:
    """Recorded trees for a set of prompts, concatenated over prompts (CSR offsets)."""

    meta: dict[str, Any]
    prompt_tokens: np.ndarray
    prompt_offsets: np.ndarray
    output_tokens: np.ndarray
    output_offsets: np.ndarray  # also the tree offsets: one tree per output position
    eos_stop: np.ndarray
    tree_tokens: np.ndarray
    tree_parents: np.ndarray
    tree_probs: np.ndarray
    tree_entropies: np.ndarray
    tree_cum_logprobs: np.ndarray
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def n_prompts(self) -> int:
        return len(self.prompt_offsets) - 1

    @property
    def width(self) -> int:
        return int(self.meta["width"])

    @property
    def max_depth(self) -> int:
        return int(self.meta["max_depth"])

    def prompt(self, i: int) -> PromptTrace:
        a, b = self.output_offsets[i], self.output_offsets[i + 1]
        return PromptTrace(
            prompt=self.prompt_tokens[self.prompt_offsets[i] : self.prompt_offsets[i + 1]],
            output=self.output_tokens[a:b],
            eos_stop=bool(self.eos_stop[i]),
            tokens=self.tree_tokens[a:b],
            parents=self.tree_parents[a:b],
            probs=self.tree_probs[a:b],
            entropies=self.tree_entropies[a:b],
            cum_logprobs=self.tree_cum_logprobs[a:b],
        )

    def save(self, path: str | Path) -> Path:
        """Compressed ``.npz`` (meta inside as JSON) plus a readable ``.json`` of the meta beside it.

        Each file is written whole or not at all (a temporary name, then a rename); the ``.npz``
        goes last, after any older one is removed, so an interrupted save leaves no ``.npz``
        (readers then name what it left) rather than one that disagrees with its sidecar.
        """
        path = Path(path)
        if path.suffix != ".npz":
            raise SpecGymError(f"trace path {str(path)!r} must end in .npz")
        arrays = {name: getattr(self, name) for name in ARRAYS}
        path.unlink(missing_ok=True)
        write_text_atomic(path.with_suffix(".json"), json.dumps(self.meta, indent=1))
        return write_atomic(path, lambda f: np.savez_compressed(f, meta=np.array(json.dumps(self.meta)), **arrays))

    @classmethod
    def from_prompts(cls, parts: list[PromptTrace], meta: dict[str, Any]) -> Trace:
        """The trace of ``parts`` (one per prompt, in prompt order) concatenated."""

        def offsets(arrays: list[np.ndarray]) -> np.ndarray:
            return np.concatenate([[0], np.cumsum([len(x) for x in arrays])]).astype(np.int64)

        prompts, outputs = [p.prompt for p in parts], [p.output for p in parts]
        return cls(
            meta=meta,
            prompt_tokens=np.concatenate(prompts),
            prompt_offsets=offsets(prompts),
            output_tokens=np.concatenate(outputs),
            output_offsets=offsets(outputs),
            eos_stop=np.array([p.eos_stop for p in parts], bool),
            **{f"tree_{k}": np.concatenate([getattr(p, k) for p in parts]) for k in TREE_FIELDS},
        )

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        meta, arrays = cls._read(path, ARRAYS)
        return cls(meta=meta, **arrays)

    @classmethod
    def load_meta(cls, path: str | Path) -> dict:
        """A saved trace's meta (its format version checked, as ``load`` does), without reading the arrays."""
        return cls._read(path, ())[0]

    @staticmethod
    def _read(path: str | Path, names: tuple[str, ...]) -> tuple[dict, dict[str, np.ndarray]]:
        path = Path(path)
        record = f"python -m experiments.record_traces --pair {sidecar_pair(path)} --out {path}"
        return read_npz(path, names, kind="trace", version=TRACE_VERSION, remedy=record)


@torch.no_grad()
def draft_trees(
    draft: torch.nn.Module, prompt: list[int], output: list[int], *, width: int, depth: int, chunk: int = 64
) -> dict[str, np.ndarray]:
    """The draft's tree at every output position, by teacher forcing; arrays [N, depth, width]."""
    device, n, p = draft.device, len(output), len(prompt)
    seq = prompt + output[:-1]
    c0 = len(seq)
    cache = DynamicCache(config=draft.config)
    first = forward_with_cache(draft, cache, input_ids=torch.tensor([seq], device=device)).logits[0, p - 1 :]
    check_finite(first, "draft")
    shape = (n, depth, width)
    out = {
        "tokens": np.zeros(shape, np.int32),
        "parents": np.zeros(shape, np.int16),
        "probs": np.zeros(shape),
        "entropies": np.zeros(shape),
        "cum_logprobs": np.zeros(shape),
    }
    dtype = draft.dtype
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        size, q = b - a, (b - a) * width
        ctx = torch.arange(p + a, p + b, device=device)  # context length of each position
        row, token, lp, cum, ent = top_w_children(
            log_probs(first[a:b])[:, None, :], torch.zeros(size, 1, dtype=torch.float64, device=device), width
        )
        _store(out, slice(a, b), 0, width, row, token, lp, cum, ent)
        ancestors = torch.zeros(size, width, 0, dtype=torch.long, device=device)  # cache columns
        rows_ctx = ctx.repeat_interleave(width)
        for level in range(1, depth):
            past = c0 + (level - 1) * q
            own = past + torch.arange(q, device=device)
            mask = tree_attention_mask(past, rows_ctx, ancestors.reshape(q, level - 1), dtype, device)
            logits = forward_with_cache(
                draft,
                cache,
                input_ids=token.reshape(1, q).to(device),
                position_ids=(rows_ctx + level - 1)[None],
                attention_mask=mask,
            ).logits[0]
            check_finite(logits, "draft")
            row, token, lp, cum, ent = top_w_children(log_probs(logits).reshape(size, width, -1), cum, width)
            _store(out, slice(a, b), level, width, row, token, lp, cum, ent)
            parent_cols = own.reshape(size, width).gather(1, row)
            inherited = ancestors.gather(1, row[..., None].expand(size, width, level - 1))
            ancestors = torch.cat([inherited, parent_cols[..., None]], dim=-1)
        keep_positions(cache, c0)
    return out


def _store(out, rows: slice, level: int, width: int, row, token, lp, cum, ent) -> None:
    out["tokens"][rows, level] = token.cpu().numpy()
    out["parents"][rows, level] = (row.cpu().numpy() + (level - 1) * width) if level else -1
    out["probs"][rows, level] = np.exp(lp.cpu().numpy())
    out["entropies"][rows, level] = ent.cpu().numpy()
    out["cum_logprobs"][rows, level] = cum.cpu().numpy()


def check_trace_settings(*, max_new_tokens: int, width: int, max_depth: int, chunk: int = 64) -> None:
    """The range checks of a recording, before any model work (``--flag`` names: the CLI's options)."""
    for flag, value in (("--max-new-tokens", max_new_tokens), ("--chunk", chunk)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SpecGymError(f"{flag} must be an integer >= 1, got {value!r}")
    if not (isinstance(width, int) and not isinstance(width, bool) and 1 <= width <= MAX_WIDTH):
        raise SpecGymError(f"--width (tree width) must be an integer in 1..{MAX_WIDTH}, got {width!r}")
    if not (isinstance(max_depth, int) and not isinstance(max_depth, bool) and 1 <= max_depth <= MAX_DEPTH):
        raise SpecGymError(f"--max-depth (tree depth) must be an integer in 1..{MAX_DEPTH}, got {max_depth!r}")


def record_prompt(
    pair: ModelPair, ids: list[int], *, max_new_tokens: int, width: int = 1, max_depth: int = 8, chunk: int = 64
) -> PromptTrace:
    """One prompt's target greedy output and draft trees: prompts are recorded independently, so
    any split of them over processes merges (:meth:`Trace.from_prompts`) into the serial trace."""
    result = SpeculativeDecoder(pair).generate_target(ids, max_new_tokens)
    tree = draft_trees(pair.draft, list(ids), result.tokens, width=width, depth=max_depth, chunk=chunk)
    return PromptTrace(
        prompt=np.asarray(ids, np.int32),
        output=np.asarray(result.tokens, np.int32),
        eos_stop=result.stop_reason == "eos",
        **tree,
    )


def trace_meta(
    pair_facts: dict[str, Any], *, n_prompts: int, max_new_tokens: int, width: int, max_depth: int, meta: dict | None
) -> dict[str, Any]:
    """A trace's meta from :func:`pair_facts` of the pair that recorded it and the recording's settings."""
    return {
        "version": TRACE_VERSION,
        **pair_facts,
        "width": width,
        "max_depth": max_depth,
        "max_new_tokens": max_new_tokens,
        "n_prompts": n_prompts,
        "date": date.today().isoformat(),
        **(meta or {}),
    }


def pair_facts(pair: ModelPair) -> dict[str, Any]:
    """What a trace records of its pair (read where the pair is loaded: a worker, with --workers)."""
    return {
        "pair": pair.name,
        "pair_info": pair.describe(),
        "max_context": pair.max_context,
        "vocab_size": pair.vocab_size,
        "eos_token_ids": sorted(pair.eos_token_ids),
    }


def record_trace(
    pair: ModelPair,
    prompts: list[list[int]],
    *,
    max_new_tokens: int,
    width: int = 1,
    max_depth: int = 8,
    meta: dict[str, Any] | None = None,
    chunk: int = 64,
    progress: bool = True,
) -> Trace:
    """Target greedy outputs and draft trees for ``prompts`` (token ids); see the module docstring."""
    check_trace_settings(max_new_tokens=max_new_tokens, width=width, max_depth=max_depth, chunk=chunk)
    if not prompts:
        raise SpecGymError("no prompts to record; pass at least one")
    shape = {"max_new_tokens": max_new_tokens, "width": width, "max_depth": max_depth}
    parts = [
        record_prompt(pair, ids, chunk=chunk, **shape)
        for ids in tqdm(prompts, desc="recording traces", disable=not progress)
    ]
    return Trace.from_prompts(parts, trace_meta(pair_facts(pair), n_prompts=len(parts), meta=meta, **shape))
