"""Cost-profile families: a cost model drawn per episode, so one DraftVerify policy serves many devices.

A :class:`CostFamily` draws a :class:`~envs.specdec.cost.CostModel` from a numpy ``Generator``
(DraftVerify passes its ``np_random`` at each ``reset``). The families, by name (what
``cost_family=`` and ``train --cost-family`` take):

- ``calibrated``: the env's ``cost_model`` as it is (the pair's profile calibrated on this device,
  or ``analytic`` for the toy pairs): every episode the same.
- ``calibrated-perturbed``: that model with every draft forward ``draft_scale`` times as long and
  the extra cost of verifying more than one token ``verify_scale`` times as large (both
  log-uniform in ``PERTURB_RANGES``): a faster or slower draft, a steeper or flatter verification.
- ``gpu``: :class:`GpuShapedCost` with its parameters drawn from ``GPU_RANGES``: a draft forward at
  2-10% of a target step and verification flat up to a knee of 16-64 tokens, then rising.
- ``gpu-perturbed``: a ``gpu`` draw, perturbed as ``calibrated-perturbed`` perturbs.
- ``mixed``: one of the four above, uniformly, then its draw.

GPU shape, and where the numbers come from. **Nothing here was measured on a GPU**: the project
has not run on one yet, so the ``gpu`` family is an analytic assumption shaped after published
measurements, stated here so that it can be checked and replaced by a calibrated GPU profile
(``python -m experiments.benchmark cost`` on a GPU machine) when one exists:

- draft / target step (``draft_ratio``, 0.02-0.10): Leviathan et al. 2023 ("Fast Inference from
  Transformers via Speculative Decoding") call it the cost coefficient c and report c below 0.05
  for their T5 drafts of T5-XXL; Chen et al. 2023 ("Accelerating LLM Decoding with Speculative
  Sampling") time a 4B draft at about an eighth of Chinchilla-70B's step; EAGLE (Li et al. 2024)
  drafts with one decoder layer of a 32-layer 7B target, a few percent of its step. A separate
  small draft model on a GPU is launch-bound and sits near the top of the range.
- verification (``knee`` 16-64 tokens, ``rise`` 0.5-1.0): batch-1 decoding of a 7B model on an
  A100/H100 is memory-bound, so a forward over a few dozen tokens costs about one step; past the
  point where the matrix multiplies become compute-bound it grows about linearly in the tokens.
  Sequoia (Chen et al. 2024) builds its hardware-aware trees on exactly this curve (flat to
  dozens of tokens on an A100, earlier rising on consumer GPUs); EAGLE-2 verifies about 60 tree
  tokens per step and Medusa 64, sizes chosen where verification is still nearly free. The small
  slope below the knee (``flat_slope``) and the growth of a step with context (``context_slope``,
  the KV cache read: about 4% per 1000 tokens for a 7B model with a 32-layer, 4096-wide cache
  against its 14 GB of weights) are our estimates, not measurements.

Outside these ranges lie the held-out GPU shapes of ``python -m experiments.benchmark transfer``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from envs.specdec.cost import CostModel, MeasuredCost, ProfiledCost, _finite
from envs.specdec.errors import SpecGymError

# (low, high) of each drawn parameter; log-uniform for the ratios and scales, uniform otherwise
GPU_RANGES: dict[str, tuple[float, float]] = {
    "draft_ratio": (0.02, 0.10),
    "knee": (16.0, 64.0),
    "rise": (0.5, 1.0),
    "flat_slope": (0.0, 0.005),
    "context_slope": (0.01, 0.10),
}
GPU_LOG = ("draft_ratio",)
PERTURB_RANGES: dict[str, tuple[float, float]] = {"draft_scale": (0.5, 2.0), "verify_scale": (0.5, 2.0)}
GPU_STEP = 0.02  # seconds per target step at context 0: a 7B-class target, batch 1; only ratios matter


@dataclass
class GpuShapedCost(CostModel):
    """A GPU-shaped analytic profile (see the module docstring for the shape and its sources).

    One target step at context ``c``: ``step * (1 + context_slope * c / 1000)``. Verifying ``n``
    tokens: that step times ``1 + flat_slope * (n - 1) + rise * max(0, n - knee) / knee``; a draft
    forward feeding ``n`` tokens: ``draft_ratio`` times that step times ``1 + flat_slope * (n - 1)``.
    """

    draft_ratio: float = 0.05
    knee: float = 32.0
    rise: float = 1.0
    flat_slope: float = 0.002
    context_slope: float = 0.04
    step: float = GPU_STEP
    kind: str = field(default="gpu", init=False)

    def __post_init__(self) -> None:
        for name in ("draft_ratio", "knee", "rise", "flat_slope", "context_slope", "step"):
            value = getattr(self, name)
            positive = name in ("draft_ratio", "knee", "step")
            if not _finite(value) or value < 0 or (positive and value == 0):
                raise SpecGymError(
                    f"GpuShapedCost {name}={value!r}: pass a finite number {'> 0' if positive else '>= 0'}"
                )

    def _step(self, context_len):
        return self.step * (1.0 + self.context_slope * np.asarray(context_len, float) / 1000.0)

    def draft_time(self, n_tokens: int, context_len: int) -> float:
        return float(self.draft_ratio * self._step(context_len) * (1.0 + self.flat_slope * (n_tokens - 1)))

    def verify_time(self, n_tokens: int, context_len: int) -> float:
        return float(self._verify(np.asarray(n_tokens, float), np.asarray(context_len, float)))

    def _verify(self, n: np.ndarray, ctx: np.ndarray) -> np.ndarray:
        shape = 1.0 + self.flat_slope * (n - 1) + self.rise * np.maximum(0.0, n - self.knee) / self.knee
        return self._step(ctx) * shape

    def grid(self, kind: str, sizes, contexts) -> np.ndarray:
        n, ctx = np.asarray(sizes, float)[:, None], np.asarray(contexts, float)[None, :]
        if kind == "verify":
            return self._verify(n, ctx)
        return self.draft_ratio * self._step(ctx) * (1.0 + self.flat_slope * (n - 1))

    def params(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "kind"}


@dataclass
class PerturbedCost(CostModel):
    """``base`` with draft forwards ``draft_scale`` times as long and the extra cost of verifying
    ``n`` tokens over one, ``verify_time(n) - verify_time(1)``, ``verify_scale`` times as large
    (a target step itself unchanged, so more tokens still never cost less)."""

    base: CostModel
    draft_scale: float = 1.0
    verify_scale: float = 1.0
    kind: str = field(default="perturbed", init=False)

    def __post_init__(self) -> None:
        for name in ("draft_scale", "verify_scale"):
            value = getattr(self, name)
            if not _finite(value) or value <= 0:
                raise SpecGymError(f"PerturbedCost {name}={value!r}: pass a finite number > 0 (1 = unchanged)")

    def draft_time(self, n_tokens: int, context_len: int) -> float:
        return self.draft_scale * self.base.draft_time(n_tokens, context_len)

    def verify_time(self, n_tokens: int, context_len: int) -> float:
        one = self.base.verify_time(1, context_len)
        return one + self.verify_scale * (self.base.verify_time(n_tokens, context_len) - one)

    def grid(self, kind: str, sizes, contexts) -> np.ndarray:
        table = self.base.grid(kind, sizes, contexts)
        if kind == "draft":
            return self.draft_scale * table
        one = self.base.grid("verify", [1], contexts)
        return one + self.verify_scale * (table - one)

    def params(self) -> dict[str, Any]:
        return {
            "base": self.base.kind,
            **self.base.params(),
            "draft_scale": self.draft_scale,
            "verify_scale": self.verify_scale,
        }


def _uniform(rng: np.random.Generator, low: float, high: float, log: bool = False) -> float:
    if log:
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))
    return float(rng.uniform(low, high))


class CostFamily(ABC):
    """Draws a cost model per episode; ``name`` is what ``cost_family=`` takes."""

    name: str

    def __init__(self, base: CostModel):
        self.base = base

    @abstractmethod
    def draw(self, rng: np.random.Generator) -> CostModel: ...


class Calibrated(CostFamily):
    name = "calibrated"

    def draw(self, rng: np.random.Generator) -> CostModel:
        return self.base


def perturb(base: CostModel, rng: np.random.Generator) -> PerturbedCost:
    """``base`` with a draft scale and a verification scale drawn log-uniformly from ``PERTURB_RANGES``."""
    scales = {name: _uniform(rng, *bounds, log=True) for name, bounds in PERTURB_RANGES.items()}
    return PerturbedCost(base, **scales)


class CalibratedPerturbed(CostFamily):
    name = "calibrated-perturbed"

    def draw(self, rng: np.random.Generator) -> CostModel:
        return perturb(self.base, rng)


def draw_gpu(rng: np.random.Generator) -> GpuShapedCost:
    """A :class:`GpuShapedCost` with each parameter drawn from ``GPU_RANGES``."""
    return GpuShapedCost(**{name: _uniform(rng, *bounds, log=name in GPU_LOG) for name, bounds in GPU_RANGES.items()})


class Gpu(CostFamily):
    name = "gpu"

    def draw(self, rng: np.random.Generator) -> CostModel:
        return draw_gpu(rng)


class GpuPerturbed(CostFamily):
    name = "gpu-perturbed"

    def draw(self, rng: np.random.Generator) -> CostModel:
        return perturb(draw_gpu(rng), rng)


class Mixed(CostFamily):
    name = "mixed"

    def __init__(self, base: CostModel):
        super().__init__(base)
        self.members = [cls(base) for cls in (Calibrated, CalibratedPerturbed, Gpu, GpuPerturbed)]

    def draw(self, rng: np.random.Generator) -> CostModel:
        return self.members[int(rng.integers(len(self.members)))].draw(rng)


FAMILIES: dict[str, type[CostFamily]] = {
    cls.name: cls for cls in (Calibrated, CalibratedPerturbed, Gpu, GpuPerturbed, Mixed)
}


def check_family_name(name: object) -> str:
    """``name`` if it is a family's name, else a SpecGymError listing them."""
    if name not in FAMILIES:
        raise SpecGymError(
            f"unknown cost family {name!r}; choose one of {', '.join(FAMILIES)} (or no family, for a fixed cost model)"
        )
    return str(name)


def make_cost_family(name: str, base: CostModel) -> CostFamily:
    """The family ``name`` around ``base`` (the env's ``cost_model``, which ``calibrated`` returns)."""
    check_family_name(name)
    if isinstance(base, MeasuredCost):
        raise SpecGymError("a cost family draws predictive cost models; pass a profiled .json or 'analytic' cost_model")
    return FAMILIES[name](base)


def describe(cost: CostModel) -> dict[str, Any]:
    """What a drawn cost model is: its kind and parameters (for ``info`` and results)."""
    return {"kind": cost.kind, **cost.params()}


def to_profile(
    cost: CostModel, contexts: list[int], draft_sizes: list[int], verify_sizes: list[int], meta: dict[str, Any]
) -> ProfiledCost:
    """``cost`` as a latency table at these sizes and contexts (exact at them; a profile .json is
    what env kwargs and ``train --cost-model`` carry)."""
    return ProfiledCost(
        list(contexts),
        list(draft_sizes),
        cost.grid("draft", draft_sizes, contexts).tolist(),
        list(verify_sizes),
        cost.grid("verify", verify_sizes, contexts).tolist(),
        {**meta, "source": describe(cost)},
    )
