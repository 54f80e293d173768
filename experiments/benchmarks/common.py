"""Helpers every benchmark shares: spread statistics and interleaved timing."""

from __future__ import annotations

import functools
import math
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
from tqdm.auto import tqdm

from envs.specdec.state import Timer

if TYPE_CHECKING:
    from experiments.workers import Pool

P = TypeVar("P")


def spread(values: list[float]) -> dict[str, float]:
    return {
        "mean": float(np.mean(values)),
        "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
        "min": float(np.min(values)),
        "max": float(np.max(values)),
    }


def interleaved(
    methods: dict[str, Callable[[P], list[int]]], prompts: Sequence[P], repeats: int, device
) -> tuple[dict[str, list[float]], dict[str, list[list[int]]]]:
    """Tokens/s of each method per repetition; methods alternate per prompt, order rotating per rep.

    A prompt is whatever the methods take (token ids, or an index into a cycle source).
    """
    names = list(methods)
    for name in names:  # warm-up: first-call allocations and lazy inits stay out of the timings
        methods[name](prompts[0])
    bar = tqdm(total=repeats * len(prompts) * len(names), desc="decoding")
    runs = []
    for rep in range(repeats):
        for prompt in prompts:
            runs.append((rep, timed(methods, prompt, rotated(names, rep), device)))
            bar.update(len(names))
    bar.close()
    return merge_timed(runs, names, repeats)


def rotated(names: list[str], rep: int) -> list[str]:
    """The order methods run in on repetition ``rep`` (each goes first in turn)."""
    return names[rep % len(names) :] + names[: rep % len(names)]


def timed(methods: dict[str, Callable[[P], Any]], prompt: P, order: list[str], device) -> dict[str, tuple]:
    """Each method on ``prompt`` in ``order``: (its output tokens, seconds, what else it returned),
    by method name; a method returns its tokens, or (tokens, anything else)."""
    out = {}
    for name in order:
        with Timer(device) as timer:
            result = methods[name](prompt)
        tokens, extra = result if isinstance(result, tuple) else (result, None)
        out[name] = (tokens, timer.elapsed, extra)
    return out


_METHODS: dict[str, dict[str, Callable]] = {}  # per process: one run's methods, made and warmed up once


def pool_interleaved(
    pool: Pool, make_methods: Callable[[Any], dict[str, Callable[[P], Any]]], prompts: Sequence[P], repeats: int
) -> tuple[dict[str, list[float]], dict[str, list[list[int]]], list[tuple[int, dict[str, tuple]]]]:
    """:func:`interleaved` over a pool's workers: each prompt and repetition is one item, timed on the
    worker that runs it (methods alternate per prompt there); ``make_methods(state)`` makes a worker's
    methods once. Also returns every item's :func:`timed` result as (repetition, result)."""
    key = uuid.uuid4().hex
    items = [(rep, i) for rep in range(repeats) for i in range(len(prompts))]
    work = functools.partial(_timed_item, make=make_methods, key=key, prompts=list(prompts))
    try:
        runs = pool.map(work, items, "decoding")
    finally:
        _METHODS.pop(key, None)  # this process's (the workers' go with them)
    names = list(runs[0][1])
    return (*merge_timed(runs, names, repeats), runs)


def _timed_item(pair, item: tuple[int, int], *, make, key: str, prompts: list) -> tuple[int, dict[str, tuple]]:
    if key not in _METHODS:
        methods = make(pair)
        for method in methods.values():  # warm-up: first-call allocations and lazy inits stay out of the timings
            method(prompts[0])
        _METHODS[key] = methods
    rep, index = item
    methods = _METHODS[key]
    return rep, timed(methods, prompts[index], rotated(list(methods), rep), pair.device)


def merge_timed(
    runs: Sequence[tuple[int, dict[str, tuple]]], names: list[str], repeats: int
) -> tuple[dict[str, list[float]], dict[str, list[list[int]]]]:
    """:func:`timed` results, as (repetition, result) in prompt order, to tokens/s per method and
    repetition and the first repetition's outputs (what :func:`interleaved` returns)."""
    rates: dict[str, list[float]] = {n: [] for n in names}
    outputs: dict[str, list[list[int]]] = {n: [out[n][0] for rep, out in runs if rep == 0] for n in names}
    for rep in range(repeats):
        for name in names:
            done = [out[name] for r, out in runs if r == rep]
            rates[name].append(sum(len(t[0]) for t in done) / sum(t[1] for t in done))
    return rates, outputs


@contextmanager
def float32_target(pair) -> Iterator[None]:
    """The pair's target in float32 inside the block, back in its own dtype after (errors too)."""
    dtype = pair.target.dtype
    pair.target.float()
    try:
        yield
    finally:
        pair.target.to(dtype)


@torch.inference_mode()
def divergences(
    pair, prompts: Sequence[Sequence[int]], outputs: dict[str, list[list[int]]], reference: str = "target_ar"
) -> list[dict]:
    """Where an SpD output left target-only decoding: the first differing position and how far
    apart the two tokens' logits are there under the target in float32.

    In bfloat16 a block of k+1 tokens and one token at a time reduce in different orders, so
    near-ties can break differently (as on GPUs); a gap within a few bfloat16 steps of the logit
    (|logit| / 128 each) shows a tie, a larger one an engine bug. Float32 runs are expected to
    have none.
    """
    differing = [
        (method, i, ref, out)
        for method, outs in outputs.items()
        if method != reference
        for i, (ref, out) in enumerate(zip(outputs[reference], outs, strict=True))
        if out != ref
    ]
    if not differing:
        return []  # no float32 copy of the target needed
    found = []
    with float32_target(pair):
        for method, i, ref, out in differing:
            pos = next((j for j, (a, b) in enumerate(zip(ref, out, strict=False)) if a != b), min(len(ref), len(out)))
            prefix = torch.tensor([list(prompts[i]) + ref[:pos]], device=pair.device)
            logits = pair.target(input_ids=prefix).logits[0, -1].float()
            a, b = ref[pos] if pos < len(ref) else None, out[pos] if pos < len(out) else None
            both = a is not None and b is not None
            gap, logit = (float((logits[a] - logits[b]).abs()), float(logits[a])) if both else (math.nan, math.nan)
            found.append(
                {
                    "method": method,
                    "prompt": i,
                    "position": pos,
                    "target_token": a,
                    "spd_token": b,
                    "float32_logit_gap": gap,
                    "float32_logit": logit,
                }
            )
    return found


@torch.inference_mode()
def top2_gaps(pair, prompts: Sequence[Sequence[int]], outputs: list[list[int]]) -> dict[str, float]:
    """Quantiles of the float32 target's top-1 minus top-2 logit over every generated position:
    what a divergence's gap is to be compared with (a tie is a gap far below the median)."""
    gaps = []
    with float32_target(pair):
        for prompt, out in zip(prompts, outputs, strict=True):
            ids = torch.tensor([list(prompt) + out], device=pair.device)
            logits = pair.target(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
            top = logits.topk(2, dim=-1).values
            gaps.append(top[:, 0] - top[:, 1])
    gap = torch.cat(gaps).cpu().numpy()
    return {f"p{q}": float(np.percentile(gap, q)) for q in (1, 5, 25, 50)} | {"n_positions": int(gap.size)}
