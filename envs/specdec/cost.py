"""Cost models: how long a cycle's draft forwards and verification take.

- ``measured``: the synchronised wall clock the engine recorded (final numbers).
- ``profiled``: a latency table calibrated once per device and pair by timing the engine's
  own drafting and verification code on synthetic contexts; deterministic, saved as JSON.
  Training and trace replay use it, so rewards do not depend on machine noise.
- ``analytic``: linear formulas with fixed coefficients, for tests.
"""

from __future__ import annotations

import json
import platform
import statistics
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from envs.specdec.errors import SpecGymError
from envs.specdec.records import CycleRecord


class CostModel(ABC):
    """Seconds for one draft forward / one verification forward of ``n_tokens`` at a context."""

    kind: str

    @abstractmethod
    def draft_time(self, n_tokens: int, context_len: int) -> float: ...

    @abstractmethod
    def verify_time(self, n_tokens: int, context_len: int) -> float: ...

    def cycle_time(self, record: CycleRecord) -> float:
        """Predicted seconds of a recorded cycle (its draft forwards plus its verification)."""
        ctx = record.context_len
        return sum(self.draft_time(n, ctx) for n in record.draft_tokens_fed) + self.verify_time(
            record.verify_tokens_fed, ctx
        )


class MeasuredCost(CostModel):
    """The engine's own synchronised wall-clock times; cannot predict unseen cycles."""

    kind = "measured"

    def draft_time(self, n_tokens: int, context_len: int) -> float:
        raise SpecGymError("the measured cost model only times cycles that ran; use 'profiled' to predict")

    verify_time = draft_time

    def cycle_time(self, record: CycleRecord) -> float:
        return record.draft_time + record.verify_time


@dataclass
class AnalyticCost(CostModel):
    """``base + per_token * n + per_context * ctx`` for each model (seconds)."""

    draft_base: float = 1e-3
    draft_per_token: float = 1e-4
    draft_per_context: float = 1e-6
    verify_base: float = 1e-2
    verify_per_token: float = 5e-4
    verify_per_context: float = 1e-5
    kind: str = field(default="analytic", init=False)

    def draft_time(self, n_tokens: int, context_len: int) -> float:
        return self.draft_base + self.draft_per_token * n_tokens + self.draft_per_context * context_len

    def verify_time(self, n_tokens: int, context_len: int) -> float:
        return self.verify_base + self.verify_per_token * n_tokens + self.verify_per_context * context_len


@dataclass
class ScaledDraftCost(CostModel):
    """``base`` with every draft forward ``scale`` times as long: what-if studies of a faster draft."""

    base: CostModel
    scale: float
    kind: str = field(default="scaled-draft", init=False)

    def draft_time(self, n_tokens: int, context_len: int) -> float:
        return self.scale * self.base.draft_time(n_tokens, context_len)

    def verify_time(self, n_tokens: int, context_len: int) -> float:
        return self.base.verify_time(n_tokens, context_len)


def _interp(sizes: list[int], contexts: list[int], table: list[list[float]], n: int, ctx: int) -> float:
    """Linear in context within each measured size, then linear in size (extrapolated past the last)."""
    rows = [np.interp(ctx, contexts, row) for row in table]
    if n <= sizes[0]:
        return float(rows[0])
    i = min(int(np.searchsorted(sizes, n)), len(sizes) - 1)
    lo, hi = i - 1, i
    frac = (n - sizes[lo]) / (sizes[hi] - sizes[lo])
    return float(rows[lo] + frac * (rows[hi] - rows[lo]))


@dataclass
class ProfiledCost(CostModel):
    """A latency table by number of tokens and context length; see :func:`calibrate`."""

    contexts: list[int]
    draft_sizes: list[int]
    draft_table: list[list[float]]  # [size][context] seconds
    verify_sizes: list[int]
    verify_table: list[list[float]]
    meta: dict[str, Any] = field(default_factory=dict)
    kind: str = field(default="profiled", init=False)

    def draft_time(self, n_tokens: int, context_len: int) -> float:
        return _interp(self.draft_sizes, self.contexts, self.draft_table, n_tokens, context_len)

    def verify_time(self, n_tokens: int, context_len: int) -> float:
        return _interp(self.verify_sizes, self.contexts, self.verify_table, n_tokens, context_len)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        data.pop("kind")
        path.write_text(json.dumps({"kind": "profiled", **data}, indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> ProfiledCost:
        try:
            data = json.loads(Path(path).read_text())
            data.pop("kind", None)
            return cls(**data)
        except (OSError, ValueError, TypeError) as exc:
            raise SpecGymError(
                f"cannot read cost profile {str(path)!r} ({exc}); recalibrate with "
                "python -m experiments.benchmark cost --pair NAME"
            ) from None


def make_cost_model(spec: str | CostModel) -> CostModel:
    """``measured`` | ``analytic`` | a profile JSON path (what env kwargs carry)."""
    if isinstance(spec, CostModel):
        return spec
    if spec == "measured":
        return MeasuredCost()
    if spec == "analytic":
        return AnalyticCost()
    if str(spec).endswith(".json"):
        return ProfiledCost.load(spec)
    raise SpecGymError(f"unknown cost model {spec!r}; use 'measured', 'analytic' or a profile .json path")


def calibrate(
    pair,
    *,
    contexts: list[int] | None = None,
    draft_sizes: tuple[int, ...] = (1, 2, 3, 4, 6, 8),
    verify_sizes: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32),
    repeats: int = 7,
    seed: int = 0,
    progress: bool = True,
) -> ProfiledCost:
    """Time the engine's draft steps and verifications on random contexts (median of ``repeats``).

    Draft entries time a :class:`Drafter` step feeding ``n`` tokens (a width-``n`` level,
    top-W expansion included); verify entries time :func:`verify` on a chain of ``n - 1``
    nodes plus the pending token. Caches are cut back after each call, so every sample sees
    the same context.
    """
    from envs.specdec.decoder import SpeculativeDecoder
    from envs.specdec.draft import Drafter, DraftTree
    from envs.specdec.state import Timer
    from envs.specdec.verify import verify

    dec = SpeculativeDecoder(pair)
    limit = pair.max_context - max(verify_sizes) - 2
    contexts = sorted(c for c in (contexts or [32, 128, 256, 512, 1024]) if c <= limit)
    if not contexts:
        raise SpecGymError(f"context window {pair.max_context} too small to calibrate; pass shorter contexts")
    gen = torch.Generator().manual_seed(seed)
    draft_table = [[0.0] * len(contexts) for _ in draft_sizes]
    verify_table = [[0.0] * len(contexts) for _ in verify_sizes]
    steps = len(contexts) * (len(draft_sizes) + len(verify_sizes))
    bar = tqdm(total=steps, desc="calibrating cost model", disable=not progress)
    for c, ctx in enumerate(contexts):
        prompt = torch.randint(0, pair.vocab_size, (ctx,), generator=gen).tolist()
        state = dec.start(prompt, max_new_tokens=64)
        for s, n in enumerate(draft_sizes):
            times = []
            for _ in range(repeats + 2):  # two warm-ups
                drafter = Drafter(pair.draft, state, n, dec.sampling)
                drafter.step()  # feeds the pending token, grows n nodes
                drafter.step()  # feeds those n nodes
                times.append(drafter.step_times[1])
                state.rewind(ctx - 1)
            draft_table[s][c] = statistics.median(times[2:])
            bar.update()
        for s, n in enumerate(verify_sizes):
            chain = torch.randint(0, pair.vocab_size, (n - 1,), generator=gen).tolist()
            tree = DraftTree(tokens=chain, parents=list(range(-1, n - 2)), depths=list(range(1, n)), q=[None] * (n - 1))
            times = []
            for _ in range(repeats + 2):
                with Timer(state.device) as timer:
                    verify(pair.target, state, tree, list(range(n - 1)), dec.sampling)
                times.append(timer.elapsed)
                state.rewind(ctx - 1)
            verify_table[s][c] = statistics.median(times[2:])
            bar.update()
    bar.close()
    meta = {
        "pair": pair.name,
        "device": device_name(pair.device),
        "dtype": pair.dtype_name,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "date": date.today().isoformat(),
    }
    return ProfiledCost(contexts, list(draft_sizes), draft_table, list(verify_sizes), verify_table, meta)


def device_name(device: torch.device) -> str:
    """Human-readable device: the GPU's name, or the CPU model and thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu ({cpu}, {torch.get_num_threads()} threads)"
