"""Turning logits into the distributions that drafting and acceptance read.

Draft and target go through the same transform (temperature, then top-p), so the
speculative-sampling rule compares like with like and stays lossless.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from envs.specdec.errors import SpecGymError


@dataclass(frozen=True)
class SamplingConfig:
    """How tokens are chosen: greedy when ``temperature == 0``, else sampled."""

    temperature: float = 0.0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if not (self.temperature >= 0.0 and self.temperature < float("inf")):
            raise SpecGymError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise SpecGymError(f"top_p must be in (0, 1], got {self.top_p}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def check_finite(logits: torch.Tensor, who: str) -> None:
    """Refuse NaN/inf logits: acceptance on them would be silent garbage."""
    if not torch.isfinite(logits).all():
        raise SpecGymError(
            f"the {who} model produced NaN or inf logits; load it in float32 (dtype='float32') or check its weights"
        )


def log_probs(logits: torch.Tensor) -> torch.Tensor:
    """Temperature-1 log-probabilities in float32 (features, tree scores)."""
    return torch.log_softmax(logits.float(), dim=-1)


def sampling_probs(logits: torch.Tensor, cfg: SamplingConfig) -> torch.Tensor:
    """Distribution to sample from: softmax(logits / T), restricted to the top-p nucleus."""
    probs = torch.softmax(logits.float() / cfg.temperature, dim=-1)
    if cfg.top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        # keep a token while the mass before it is < top_p (the top token always stays)
        drop = (sorted_p.cumsum(dim=-1) - sorted_p) >= cfg.top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_p)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


def entropy(logp: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of log-probability rows."""
    return -(logp.exp() * logp).nan_to_num(0.0).sum(dim=-1)


def sample(probs: torch.Tensor, generator: torch.Generator | None) -> int:
    return int(torch.multinomial(probs, 1, generator=generator).item())
