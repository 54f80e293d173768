"""Cost models: how long a cycle's draft forwards and verification take.

- ``measured``: the synchronised wall clock the engine recorded (final numbers).
- ``profiled``: a latency table calibrated once per device and pair by timing the engine's
  own drafting and verification code on synthetic contexts; deterministic, saved as JSON.
  Training and trace replay use it, so rewards do not depend on machine noise.
- ``analytic``: linear formulas with fixed coefficients, for tests.
"""

from __future__ import annotations

import json
import math
import numbers
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
from envs.specdec.files import leftover_note, write_text_atomic
from envs.specdec.records import CycleRecord


class CostModel(ABC):
    """Seconds for one draft forward / one verification forward of ``n_tokens`` at a context."""

    kind: str

    @abstractmethod
    def draft_time(self, n_tokens: int, context_len: int) -> float: ...

    @abstractmethod
    def verify_time(self, n_tokens: int, context_len: int) -> float: ...

    def grid(self, kind: str, sizes, contexts) -> np.ndarray:
        """``[len(sizes), len(contexts)]`` seconds of ``kind`` (draft | verify) forwards: the same
        numbers as the scalar calls, bit for bit (replay builds its tables from this)."""
        one = self.draft_time if kind == "draft" else self.verify_time
        return np.array([[one(int(n), int(c)) for c in contexts] for n in sizes], dtype=float)

    def params(self) -> dict[str, Any]:
        """The numbers that define this model (results and ``info`` show them); {} for a table."""
        return {}

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

    def __post_init__(self) -> None:
        for name in (
            "draft_base",
            "draft_per_token",
            "draft_per_context",
            "verify_base",
            "verify_per_token",
            "verify_per_context",
        ):
            value = getattr(self, name)
            least = "> 0" if name.endswith("base") else ">= 0"
            if not _finite(value) or value < 0 or (value == 0 and name.endswith("base")):
                raise SpecGymError(f"AnalyticCost {name}={value!r}: pass a finite number of seconds {least}")

    def draft_time(self, n_tokens: int, context_len: int) -> float:
        return self.draft_base + self.draft_per_token * n_tokens + self.draft_per_context * context_len

    def verify_time(self, n_tokens: int, context_len: int) -> float:
        return self.verify_base + self.verify_per_token * n_tokens + self.verify_per_context * context_len

    def grid(self, kind: str, sizes, contexts) -> np.ndarray:
        n, ctx = np.asarray(sizes, np.int64)[:, None], np.asarray(contexts, np.int64)[None, :]
        base, per_token, per_context = (getattr(self, f"{kind}_{x}") for x in ("base", "per_token", "per_context"))
        return base + per_token * n + per_context * ctx

    def params(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "kind"}


@dataclass
class ScaledDraftCost(CostModel):
    """``base`` with every draft forward ``scale`` times as long: what-if studies of a faster draft."""

    base: CostModel
    scale: float
    kind: str = field(default="scaled-draft", init=False)

    def __post_init__(self) -> None:
        if not _finite(self.scale) or self.scale <= 0:
            raise SpecGymError(f"draft time scale {self.scale!r} must be a finite number > 0 (1 = as measured)")

    def draft_time(self, n_tokens: int, context_len: int) -> float:
        return self.scale * self.base.draft_time(n_tokens, context_len)

    def verify_time(self, n_tokens: int, context_len: int) -> float:
        return self.base.verify_time(n_tokens, context_len)

    def grid(self, kind: str, sizes, contexts) -> np.ndarray:
        table = self.base.grid(kind, sizes, contexts)
        return self.scale * table if kind == "draft" else table


def _interp(sizes: list[int], contexts: list[int], table: list[list[float]], n: int, ctx: int) -> float:
    """Linear in context within each measured size, then linear in size (extrapolated past the last)."""
    rows = [np.interp(ctx, contexts, row) for row in table]
    if n <= sizes[0] or len(sizes) == 1:
        return float(rows[0])
    i = min(int(np.searchsorted(sizes, n)), len(sizes) - 1)
    lo, hi = i - 1, i
    frac = (n - sizes[lo]) / (sizes[hi] - sizes[lo])
    return float(rows[lo] + frac * (rows[hi] - rows[lo]))


def _interp_grid(sizes: list[int], contexts: list[int], table: list[list[float]], ns, ctxs) -> np.ndarray:
    """:func:`_interp` at every (n, ctx) of ``ns`` x ``ctxs``, by the same float operations."""
    ctxs = np.asarray(ctxs, float)
    rows = np.stack([np.interp(ctxs, contexts, row) for row in table])
    out = np.empty((len(ns), len(ctxs)))
    for j, n in enumerate(ns):
        if n <= sizes[0] or len(sizes) == 1:
            out[j] = rows[0]
            continue
        i = min(int(np.searchsorted(sizes, n)), len(sizes) - 1)
        lo, hi = i - 1, i
        frac = (n - sizes[lo]) / (sizes[hi] - sizes[lo])
        out[j] = rows[lo] + frac * (rows[hi] - rows[lo])
    return out


def _finite(x: object) -> bool:
    """A real number (not a bool), neither inf nor NaN."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


# How much less time a cell may take than one with fewer tokens before the table counts as wrong:
# the larger of the two cells' spreads between repeats, within these bounds (below 10%, kernel
# choices alone can make a few more tokens a little cheaper); a profile without spreads (saved
# before they were recorded) is allowed NOISE_DEFAULT.
NOISE_FLOOR = 0.10
NOISE_CAP = 0.25
NOISE_DEFAULT = 0.10
# ... and by at least this many seconds: below it a dip is timer and scheduler jitter on a shared
# CPU (one context switch costs about that), whatever its share of a toy model's sub-millisecond
# cell; a real model's cells (tens of ms on a CPU) are judged by the relative allowance alone.
NOISE_SECONDS = 1e-3
REMEASURE_ROUNDS = 5  # calibrate's re-measurements of cells that break the check, before it refuses
REMEASURE_REPEATS = 5  # the least repeats of a re-measurement: enough to measure the cell's spread


def spread_of(times: list[float]) -> float:
    """Spread between a cell's repeats: ``(max - min) / median`` (0 for a single repeat)."""
    return (max(times) - min(times)) / statistics.median(times)


def _tokens(n: int) -> str:
    return f"{n} token{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class Dip:
    """A cell of more tokens that takes less time than one of fewer, beyond the noise allowance."""

    kind: str  # draft | verify
    c: int  # context index
    small: int  # size index of the slower cell of fewer tokens
    large: int  # size index of the faster cell of more tokens
    context: int
    n_small: int
    n_large: int
    t_small: float
    t_large: float
    allowance: float

    @property
    def drop(self) -> float:
        return 1.0 - self.t_large / self.t_small

    @property
    def excess(self) -> float:
        return self.drop - self.allowance

    def __str__(self) -> str:
        what = "verifying" if self.kind == "verify" else "a draft step feeding"
        return (
            f"{what} {_tokens(self.n_large)} at context {self.context} takes {self.t_large * 1e3:.3g} ms but "
            f"{_tokens(self.n_small)} {self.t_small * 1e3:.3g} ms ({self.drop:.0%} less, beyond the "
            f"{self.allowance:.0%} noise allowance)"
        )


def find_dips(
    kind: str,
    sizes: list[int],
    contexts: list[int],
    table: list[list[float]],
    spread: list[list[float]] | None,
) -> list[Dip]:
    """Cells whose time falls below that of a cell with fewer tokens (same context) by more than
    the noise allowance (see :data:`NOISE_FLOOR`) and by more than :data:`NOISE_SECONDS`: more
    tokens never cost less."""
    dips = []
    for c, ctx in enumerate(contexts):
        top = 0  # the slowest size so far at this context
        for s in range(1, len(sizes)):
            if spread is None:
                allowance = NOISE_DEFAULT
            else:
                allowance = min(NOISE_CAP, max(NOISE_FLOOR, spread[top][c], spread[s][c]))
            dip = table[top][c] - table[s][c]
            if dip > table[top][c] * allowance and dip > NOISE_SECONDS:
                dips.append(Dip(kind, c, top, s, ctx, sizes[top], sizes[s], table[top][c], table[s][c], allowance))
            if table[s][c] > table[top][c]:
                top = s
    return dips


def _structure_problem(data: dict[str, Any]) -> str | None:
    """What makes a profile's fields unusable (shapes, sizes, times), or None."""

    def increasing_ints(name: str) -> str | None:
        v = data.get(name)
        if not isinstance(v, list) or not v:
            return f"{name} must be a non-empty list"
        if not all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in v):
            return f"{name} must hold integers >= 1, got {v}"
        if sorted(set(v)) != v:
            return f"{name} must be strictly increasing, got {v}"
        return None

    for name in ("contexts", "draft_sizes", "verify_sizes"):
        if problem := increasing_ints(name):
            return problem
    n_ctx = len(data["contexts"])
    for kind in ("draft", "verify"):
        n_sizes = len(data[f"{kind}_sizes"])
        for name, what in ((f"{kind}_table", "times"), (f"{kind}_spread", "spreads")):
            table = data.get(name)
            if table is None and name.endswith("spread"):
                continue  # profiles saved before spreads were recorded
            if not isinstance(table, list) or len(table) != n_sizes:
                got = len(table) if isinstance(table, list) else type(table).__name__
                return f"{name} must have one row per {kind} size ({n_sizes}), got {got}"
            for s, row in enumerate(table):
                if not isinstance(row, list) or len(row) != n_ctx:
                    got = len(row) if isinstance(row, list) else type(row).__name__
                    return f"{name}[{s}] must have one entry per context ({n_ctx}), got {got}"
                for c, x in enumerate(row):
                    if what == "times" and not (_finite(x) and x > 0):
                        return f"{name}[{s}][{c}] is {x!r}: times must be finite numbers of seconds > 0"
                    if what == "spreads" and not (_finite(x) and x >= 0):
                        return f"{name}[{s}][{c}] is {x!r}: spreads must be finite numbers >= 0"
    return None


@dataclass
class ProfiledCost(CostModel):
    """A latency table by number of tokens and context length; see :func:`calibrate`.

    ``draft_spread``/``verify_spread``: each cell's spread between calibration repeats
    (:func:`spread_of`); None in profiles saved before it was recorded.
    """

    contexts: list[int]
    draft_sizes: list[int]
    draft_table: list[list[float]]  # [size][context] seconds
    verify_sizes: list[int]
    verify_table: list[list[float]]
    meta: dict[str, Any] = field(default_factory=dict)
    draft_spread: list[list[float]] | None = None
    verify_spread: list[list[float]] | None = None
    kind: str = field(default="profiled", init=False)

    def __post_init__(self) -> None:
        if problem := _structure_problem(asdict(self)):
            raise SpecGymError(
                f"invalid cost profile: {problem}; calibrate one with python -m experiments.benchmark cost"
            )

    def draft_time(self, n_tokens: int, context_len: int) -> float:
        return _interp(self.draft_sizes, self.contexts, self.draft_table, n_tokens, context_len)

    def verify_time(self, n_tokens: int, context_len: int) -> float:
        return _interp(self.verify_sizes, self.contexts, self.verify_table, n_tokens, context_len)

    def grid(self, kind: str, sizes, contexts) -> np.ndarray:
        if kind == "draft":
            return _interp_grid(self.draft_sizes, self.contexts, self.draft_table, [int(n) for n in sizes], contexts)
        return _interp_grid(self.verify_sizes, self.contexts, self.verify_table, [int(n) for n in sizes], contexts)

    def dips(self) -> list[Dip]:
        """Cells where more tokens take less time beyond the noise allowance (see :func:`find_dips`)."""
        return find_dips("draft", self.draft_sizes, self.contexts, self.draft_table, self.draft_spread) + find_dips(
            "verify", self.verify_sizes, self.contexts, self.verify_table, self.verify_spread
        )

    def save(self, path: str | Path) -> Path:
        """The profile as JSON, written whole or not at all (a temporary file renamed into place)."""
        data = asdict(self)
        data.pop("kind")
        return write_text_atomic(path, json.dumps({"kind": "profiled", **data}, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> ProfiledCost:
        """Read a saved profile, refusing one whose tables are unusable or show more tokens taking
        less time beyond the calibration's noise (see :meth:`dips`)."""
        path = Path(path)

        def bad(what: str, pair: object = None) -> SpecGymError:
            name = pair if isinstance(pair, str) and pair else "NAME"
            fix = f"recalibrate with python -m experiments.benchmark cost --pair {name}"
            return SpecGymError(f"cost profile {str(path)!r} {what}; {fix}")

        if not path.is_file():
            raise bad(f"not found{leftover_note(path)}")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError) as exc:
            raise bad(f"cannot be read ({type(exc).__name__}: {exc})") from None
        except ValueError:
            raise bad(f"is truncated or corrupt (not valid JSON){leftover_note(path)}") from None
        if not isinstance(data, dict) or data.get("kind", "profiled") != "profiled":
            raise bad("is not a profiled cost model (a JSON object of kind 'profiled')")
        data.pop("kind", None)
        meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
        pair = meta.get("pair")
        if problem := _structure_problem(data):
            raise bad(f"is invalid: {problem}", pair)
        try:
            profile = cls(**data)
        except TypeError as exc:
            raise bad(f"has fields this SpecGym does not read ({exc})", pair) from None
        if dips := profile.dips():
            worst = max(dips, key=lambda d: d.excess)
            raise bad(f"is invalid: {worst}, so it was calibrated on a busy machine; run it on a quiet one", pair)
        return profile


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


class CellTimer:
    """Times the cells of a calibration: ``repeats`` samples (after two warm-ups) of a draft step or
    a verification feeding ``n`` tokens at ``contexts[c]``. The one source of :func:`calibrate`'s
    times (tests replace it with a fake clock).

    Draft cells time a :class:`Drafter` step feeding ``n`` tokens (a width-``n`` level, top-W
    expansion included); verify cells time :func:`verify` on a chain of ``n - 1`` nodes plus the
    pending token. Caches are cut back after each call, so every sample sees the same context;
    a re-measured cell sees the same random context and chain as the first time.
    """

    def __init__(self, pair, contexts: list[int], seed: int = 0) -> None:
        from envs.specdec.decoder import SpeculativeDecoder

        self.pair, self.contexts = pair, contexts
        self.dec = SpeculativeDecoder(pair)
        self.gen = torch.Generator().manual_seed(seed)
        self._prompts: dict[int, list[int]] = {}
        self._chains: dict[tuple[int, int], list[int]] = {}
        self._state, self._state_c = None, None

    def _state_at(self, c: int):
        if self._state_c != c:
            if c not in self._prompts:
                self._prompts[c] = torch.randint(
                    0, self.pair.vocab_size, (self.contexts[c],), generator=self.gen
                ).tolist()
            self._state, self._state_c = self.dec.start(self._prompts[c], max_new_tokens=64), c
        return self._state

    def sample(self, kind: str, n: int, c: int, repeats: int) -> list[float]:
        """``repeats`` timings (seconds) of cell (``kind``, ``n`` tokens, context index ``c``)."""
        from envs.specdec.draft import Drafter, DraftTree
        from envs.specdec.state import Timer
        from envs.specdec.verify import verify

        state, ctx = self._state_at(c), self.contexts[c]
        times = []
        if kind == "draft":
            for _ in range(repeats + 2):  # two warm-ups
                drafter = Drafter(self.pair.draft, state, n, self.dec.sampling)
                drafter.step()  # feeds the pending token, grows n nodes
                drafter.step()  # feeds those n nodes
                times.append(drafter.step_times[1])
                state.rewind(ctx - 1)
            return times[2:]
        if (n, c) not in self._chains:
            self._chains[n, c] = torch.randint(0, self.pair.vocab_size, (n - 1,), generator=self.gen).tolist()
        chain = self._chains[n, c]
        tree = DraftTree(tokens=chain, parents=list(range(-1, n - 2)), depths=list(range(1, n)), q=[None] * (n - 1))
        for _ in range(repeats + 2):
            with Timer(state.device) as timer:
                verify(self.pair.target, state, tree, list(range(n - 1)), self.dec.sampling)
            times.append(timer.elapsed)
            state.rewind(ctx - 1)
        return times[2:]


def _sizes(name: str, sizes) -> list[int]:
    sizes = list(sizes)
    if not sizes or not all(isinstance(n, int) and n >= 1 for n in sizes) or sorted(set(sizes)) != sizes:
        raise SpecGymError(f"calibration {name} must be increasing integers >= 1, got {sizes}")
    return sizes


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
    """Time the engine's draft steps and verifications on random contexts (median of ``repeats``;
    see :class:`CellTimer`), and check the tables it made.

    Each cell's spread between repeats (:func:`spread_of`) is kept in the profile. More tokens
    never cost less, so a cell that takes less time than one of fewer tokens beyond the noise
    allowance (:func:`find_dips`) means the machine was busy while one of them ran: both are
    measured again (at least :data:`REMEASURE_REPEATS` repeats; a cell keeps its quicker median,
    as other work only slows it), up to :data:`REMEASURE_ROUNDS` times, and if the tables still
    fail the check calibration refuses (a SpecGymError starting "the machine is busy") rather
    than save them.
    """
    draft_sizes, verify_sizes = _sizes("draft sizes", draft_sizes), _sizes("verify sizes", verify_sizes)
    if not isinstance(repeats, int) or repeats < 1:
        raise SpecGymError(f"calibration repeats must be an integer >= 1, got {repeats!r}")
    limit = pair.max_context - max(verify_sizes) - 2
    contexts = sorted({c for c in (contexts or [32, 128, 256, 512, 1024]) if 1 <= c <= limit})
    if not contexts:
        raise SpecGymError(f"context window {pair.max_context} too small to calibrate; pass shorter contexts")
    timer = CellTimer(pair, contexts, seed)
    sizes = {"draft": draft_sizes, "verify": verify_sizes}
    tables = {k: [[0.0] * len(contexts) for _ in v] for k, v in sizes.items()}
    spreads = {k: [[0.0] * len(contexts) for _ in v] for k, v in sizes.items()}

    def measure(kind: str, s: int, c: int, n: int = repeats, again: bool = False) -> None:
        times = timer.sample(kind, sizes[kind][s], c, n)
        median = statistics.median(times)
        if not again or median < tables[kind][s][c]:  # a busy machine only slows a cell: keep the quieter run
            tables[kind][s][c], spreads[kind][s][c] = median, spread_of(times)

    steps = len(contexts) * (len(draft_sizes) + len(verify_sizes))
    bar = tqdm(total=steps, desc="calibrating cost model", disable=not progress)
    for c in range(len(contexts)):
        for kind in ("draft", "verify"):
            for s in range(len(sizes[kind])):
                measure(kind, s, c)
                bar.update()
    bar.close()
    remeasured = 0
    for attempt in range(REMEASURE_ROUNDS + 1):
        dips = [d for k in sizes for d in find_dips(k, sizes[k], contexts, tables[k], spreads[k])]
        if not dips:
            break
        if attempt == REMEASURE_ROUNDS:
            worst = max(dips, key=lambda d: d.excess)
            raise SpecGymError(
                f"the machine is busy: {worst} after {REMEASURE_ROUNDS} re-measurements of the cells that "
                f"broke the check ({len(dips)} still do); calibrate again on a quiet machine or with fewer "
                "threads (--threads 1)"
            )
        cells = sorted({(d.c, d.kind, s) for d in dips for s in (d.small, d.large)})
        for c, kind, s in cells:  # by context: one prefill per context
            measure(kind, s, c, max(repeats, REMEASURE_REPEATS), again=True)
        remeasured += len(cells)
    meta = {
        "pair": pair.name,
        "device": device_name(pair.device),
        "dtype": pair.dtype_name,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "spread": "(max - min) / median of each cell's repeats",
        "remeasured_cells": remeasured,
        "date": date.today().isoformat(),
    }
    return ProfiledCost(
        contexts,
        draft_sizes,
        tables["draft"],
        verify_sizes,
        tables["verify"],
        meta,
        draft_spread=spreads["draft"],
        verify_spread=spreads["verify"],
    )


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
