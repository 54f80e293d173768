"""Helpers every benchmark shares: spread statistics and interleaved timing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
from tqdm.auto import tqdm

from envs.specdec.state import Timer

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
    rates: dict[str, list[float]] = {n: [] for n in names}
    outputs: dict[str, list[list[int]]] = {n: [] for n in names}
    bar = tqdm(total=repeats * len(prompts) * len(names), desc="decoding")
    for rep in range(repeats):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        tokens = dict.fromkeys(names, 0)
        seconds = dict.fromkeys(names, 0.0)
        for prompt in prompts:
            for name in order:
                with Timer(device) as timer:
                    out = methods[name](prompt)
                tokens[name] += len(out)
                seconds[name] += timer.elapsed
                if rep == 0:
                    outputs[name].append(out)
                bar.update()
        for name in names:
            rates[name].append(tokens[name] / seconds[name])
    bar.close()
    return rates, outputs
