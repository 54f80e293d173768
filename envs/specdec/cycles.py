"""Draft-and-verify cycles one decision at a time, from the live engine or a recorded trace.

DraftVerify, its partner policies and evaluation all step through a :class:`CycleSource`:
``start(prompt)`` -> per cycle ``begin_cycle()``, ``draft_step()`` (one draft forward, repeat),
``finish_cycle(n_verify)`` -> :class:`CycleResult`. :class:`LiveCycles` runs the engine;
:class:`~envs.specdec.replay.TraceReplay` replays a trace with numpy and gives the same
results. The observation vector is defined here, once, for both (see :func:`obs_layout`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from envs.specdec.cost import CostModel, MeasuredCost
from envs.specdec.decoder import SpeculativeDecoder, check_shape
from envs.specdec.errors import SpecGymError
from envs.specdec.pair import ModelPair

# Cumulative log-probs are divided by this and clipped to [-1, 0]. At 5 the range where depth rules
# act (about -0.3 to -1.5) spans a third of the input; at 20 it was squeezed into [-0.075, 0] and
# PPO's smollm2 policies were 0.7-2.5% slower (held-out, widths 4 / 2 / 1).
LOGP_SCALE = 5.0
ROLES = ("draft", "verify", "joint")  # DraftVerify's deciders: depth, verification size, both
HISTORY = 4  # past cycles in the observation
COST_RATIO_MAX = 100.0  # clip for the cost-ratio features
# "ratios": the two cost ratios at the current context and depth (the -v0 layout); "profile" adds
# the cost profile's shape: a 1-token draft forward and verifying a whole depth-l tree, l = 1..D,
# each over one target step, so a policy can tell one device's cost curve from another's
COST_FEATURES = ("ratios", "profile")


def check_cost_features(value: object) -> str:
    if value not in COST_FEATURES:
        raise SpecGymError(f"unknown cost_features {value!r}; choose one of {', '.join(COST_FEATURES)}")
    return str(value)


def obs_layout(max_depth: int, width: int, cost_features: str = "ratios") -> dict[str, slice]:
    """Index ranges of the observation vector (documented on ``DraftVerifyEnv`` in ``envs/draft_verify.py``)."""
    k = max_depth * width
    profile = [("draft_one_cost", 1), ("verify_curve", max_depth)] if cost_features == "profile" else []
    parts = [
        ("depth", 1),
        ("context", 1),
        ("remaining", 1),
        ("draft_cost", 1),
        ("verify_cost", 1),
        *profile,
        ("newest_prob", 1),
        ("newest_entropy", 1),
        ("frontier_logprobs", width),
        ("node_logprobs", k),
        ("history_accepted", HISTORY),
        ("history_depth", HISTORY),
    ]
    out, start = {}, 0
    for name, size in parts:
        out[name] = slice(start, start + size)
        start += size
    out["all"] = slice(0, start)
    return out


def obs_bounds(max_depth: int, width: int, cost_features: str = "ratios") -> tuple[np.ndarray, np.ndarray]:
    layout = obs_layout(max_depth, width, cost_features)
    n = layout["all"].stop
    low, high = np.full(n, -1.0, np.float32), np.ones(n, np.float32)
    for name in ("draft_cost", "verify_cost", "draft_one_cost", "verify_curve"):
        if name in layout:
            high[layout[name]] = COST_RATIO_MAX
    return low, high


def scale_logprobs(x: np.ndarray) -> np.ndarray:
    return np.clip(x / LOGP_SCALE, -1.0, 0.0)


def tree_features(cum: np.ndarray, probs: np.ndarray, ents: np.ndarray, n_slots: int, log_vocab: float) -> np.ndarray:
    """Tree part of the observation for ``n`` trees of ``d`` levels of width ``W``.

    ``cum``: [n, d, W] cumulative log-probs in creation order; ``probs``/``ents``: [n, W] of the
    newest level. Returns [n, 2 + W + n_slots]: the best newest node's draft prob and entropy
    (/ ln V), the newest level's cumulative log-probs sorted, all nodes' sorted (padded with -1).
    """
    n, d, w = cum.shape
    out = np.full((n, 2 + w + n_slots), -1.0)
    last = cum[:, -1, :]
    best = last.argmax(axis=1)
    rows = np.arange(n)
    out[:, 0] = probs[rows, best]
    out[:, 1] = ents[rows, best] / log_vocab
    out[:, 2 : 2 + w] = scale_logprobs(np.sort(last, axis=1)[:, ::-1])
    out[:, 2 + w : 2 + w + d * w] = scale_logprobs(np.sort(cum.reshape(n, d * w), axis=1)[:, ::-1])
    return out


def cycle_features(
    layout: dict[str, slice],
    *,
    depth: np.ndarray,
    max_depth: int,
    context_frac: np.ndarray,
    remaining_frac: np.ndarray,
    draft_cost: np.ndarray,
    verify_cost: np.ndarray,
    tree: np.ndarray,
    profile: np.ndarray | None = None,
) -> np.ndarray:
    """The observation without its history, for any batch shape S: the one place both backends
    build it (one decision live; every (position, depth) of a prompt in replay).

    ``depth`` [S]: draft forwards so far; ``context_frac``, ``remaining_frac``: context / window and
    tokens left / max_new_tokens; ``draft_cost``, ``verify_cost``: the cost ratios (clipped here);
    ``tree`` [S, 2 + W + D*W]: :func:`tree_features` where ``depth`` > 0 (ignored at depth 0, where
    nothing is drafted: probability and entropy read 0, the log-prob slots -1); ``profile``
    [..., 1 + D] (``cost_features="profile"`` layouts only): :func:`profile_features`.
    """
    depth = np.asarray(depth)
    shape = np.broadcast_shapes(depth.shape, np.shape(context_frac), np.shape(draft_cost), np.shape(verify_cost))
    out = np.full((*shape, layout["history_accepted"].start), -1.0)
    out[..., layout["depth"].start] = depth / max_depth
    out[..., layout["context"].start] = context_frac
    out[..., layout["remaining"].start] = remaining_frac
    out[..., layout["draft_cost"].start] = np.minimum(draft_cost, COST_RATIO_MAX)
    out[..., layout["verify_cost"].start] = np.minimum(verify_cost, COST_RATIO_MAX)
    if "verify_curve" in layout:
        out[..., layout["draft_one_cost"].start : layout["verify_curve"].stop] = np.minimum(profile, COST_RATIO_MAX)
    tree_part = slice(layout["newest_prob"].start, layout["node_logprobs"].stop)
    drafted = np.broadcast_to(depth > 0, shape)
    out[..., tree_part] = np.where(drafted[..., None], tree, -1.0)
    for name in ("newest_prob", "newest_entropy"):
        out[..., layout[name].start] = np.where(drafted, out[..., layout[name].start], 0.0)
    return out


def profile_features(draft_one: np.ndarray, verify: np.ndarray, max_depth: int, width: int) -> np.ndarray:
    """The ``profile`` part of the observation at each context: ``draft_one`` [C] seconds of a draft
    forward feeding one token, ``verify`` [C, D*W + 1] seconds of verifying 1 + n tokens (n = 0..D*W);
    returns [C, 1 + D]: the first over one target step, then verifying a whole depth-l tree over it."""
    step = verify[:, :1]
    return np.concatenate([draft_one[:, None], verify[:, np.arange(1, max_depth + 1) * width]], axis=1) / step


def joint_actions(max_depth: int, width: int) -> np.ndarray:
    """The joint role's Discrete actions: every (depth, size) with 1 <= size <= depth * width."""
    return np.array([(d, n) for d in range(1, max_depth + 1) for n in range(1, d * width + 1)], dtype=np.int64)


# How the verify role's action reads: "nodes", a verification size 0..D*W (the -v0/-v1 meaning), or
# "expected", a scale on the draft's acceptance estimates inside the ``expected`` size rule
# (schedules.ExpectedSize): 1 is the rule itself, 0 a plain target step, large scales verify
# everything worth a node. A policy that collapses to one scale still sizes each cycle by the rule.
SIZE_ACTIONS = ("nodes", "expected")
# 0 and 37 scales from 1/20 to 20, evenly spaced in log, 1 among them: 37 is a prime above MAX_DEPTH
# and MAX_WIDTH, so no tree shape's node-count space (D*W + 1 actions) nor joint space has 38
# actions, and a saved size policy's action space still says which it is
SIZE_SCALES = (0.0, *(20.0 ** ((i - 18) / 18) for i in range(37)))


def check_size_action(value: object, role: str) -> str:
    return _check_role_action("size_action", value, SIZE_ACTIONS, role, "verify", "a draft role's size partner")


# How the draft role's action reads: "stop", continue (0) or stop (1) after each draft forward (the
# -v0/-v1 meaning), or "expected", a scale from SIZE_SCALES on the draft's acceptance estimates inside
# the cost-aware ``expected-depth`` rule (schedules.ExpectedDepth): 1 is the rule, 0 stops, large
# scales draft on. A draft policy with 38 actions is told from a stop/continue one by its space.
DEPTH_ACTIONS = ("stop", "expected")


def check_depth_action(value: object, role: str) -> str:
    return _check_role_action("depth_action", value, DEPTH_ACTIONS, role, "draft", "a verify role's depth partner")


def _check_role_action(name: str, value: object, allowed: tuple[str, ...], role: str, owner: str, other: str) -> str:
    """``value`` if it is one of ``allowed`` and, unless it is the first (the raw action every role
    takes), ``role`` is the ``owner`` whose action it parametrises; else a SpecGymError naming the fix."""
    if value not in allowed:
        raise SpecGymError(f"unknown {name} {value!r}; choose one of {', '.join(allowed)}")
    if value != allowed[0] and role != owner:
        raise SpecGymError(
            f"{name}={value!r} is the {owner} role's action; role={role!r} takes {name}={allowed[0]!r} "
            f"({other} brings its own)"
        )
    return str(value)


def n_actions(role: str, max_depth: int, width: int, size_action: str = "nodes", depth_action: str = "stop") -> int:
    """Size of DraftVerify's Discrete action space in ``role``: stop or continue, a verification
    size 0..D*W, or one of the :func:`joint_actions`; one of the :data:`SIZE_SCALES` instead for a
    role whose action scales a rule (``size_action`` / ``depth_action`` ``"expected"``)."""
    if (role, size_action) == ("verify", "expected") or (role, depth_action) == ("draft", "expected"):
        return len(SIZE_SCALES)
    return {"draft": 2, "verify": max_depth * width + 1, "joint": width * max_depth * (max_depth + 1) // 2}[role]


@dataclass(slots=True)
class CycleResult:
    """What the env, policies and evaluation need from one finished cycle (a ``CycleRecord`` digest)."""

    context_len: int
    depth: int  # draft forwards
    n_verify: int  # nodes sent to the target
    accepted_len: int  # accepted draft tokens that were appended (the record's, capped at the end)
    new_tokens: int  # tokens appended: accepted + bonus, fewer at EOS / max_new_tokens
    draft_tokens_fed: list[int]
    verify_tokens_fed: int
    time: float  # seconds under the cost model
    target_step_time: float  # one target-only decoding step at context_len (nan if unknown)
    target_time: float  # target-only decoding of the new tokens, one step each (nan if unknown)


class CycleSource(ABC):
    """One generation at a time, cycle by cycle; the decisions are the caller's."""

    pair_name: str
    width: int
    max_depth: int
    max_new_tokens: int
    max_context: int
    vocab_size: int
    n_prompts: int
    prompt_index: int

    def _setup(self, width: int, max_depth: int, max_new_tokens: int, cost_features: str = "ratios") -> None:
        check_shape(max_depth, width)
        if max_new_tokens < 1:
            raise SpecGymError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        self.width, self.max_depth, self.max_new_tokens = width, max_depth, max_new_tokens
        self.n_slots = max_depth * width
        self.cost_features = check_cost_features(cost_features)
        self.layout = obs_layout(max_depth, width, cost_features)
        self.hist = np.full(2 * HISTORY, -1.0, np.float32)
        self._joint = joint_actions(max_depth, width)
        self._verify_range = np.arange(self.n_slots + 1)

    # -- the episode -------------------------------------------------------------
    @abstractmethod
    def start(self, prompt_index: int) -> None: ...

    @abstractmethod
    def begin_cycle(self) -> None: ...

    @abstractmethod
    def draft_step(self) -> None: ...

    @abstractmethod
    def finish_cycle(self, n_verify: int | None = None) -> CycleResult:
        """Verify the top-``n_verify`` drafted nodes by cumulative draft log-prob (None = all)."""

    # -- state every decision reads ---------------------------------------------------
    depth: int  # draft forwards this cycle (0 before drafting)

    @property
    @abstractmethod
    def done(self) -> bool: ...

    @property
    @abstractmethod
    def position(self) -> int:
        """Tokens generated so far."""

    @property
    @abstractmethod
    def prompt_len(self) -> int: ...

    @property
    @abstractmethod
    def remaining(self) -> int:
        """Tokens still allowed (max_new_tokens and the context window)."""

    @property
    @abstractmethod
    def pending(self) -> int:
        """Tokens the cycle's first draft forward feeds (1, or 2 after a fully accepted cycle)."""

    @property
    @abstractmethod
    def newest_prob(self) -> float:
        """Draft prob of the newest level's most probable node (by cumulative log-prob)."""

    @property
    @abstractmethod
    def best_logprob(self) -> float:
        """Cumulative draft log-prob of that node: log of the draft's P(its whole path)."""

    @abstractmethod
    def observation(self) -> np.ndarray: ...

    cost: CostModel

    def set_cost(self, cost: CostModel) -> None:
        """Use ``cost`` from the next ``start`` on (a cost family's draw for the next episode)."""
        self.cost = cost

    @abstractmethod
    def node_logprobs(self) -> np.ndarray:
        """Cumulative draft log-probs of the nodes drafted this cycle, in creation order."""

    @abstractmethod
    def cycle_times(self) -> np.ndarray:
        """Predicted seconds of this cycle if it verified n = 0, 1, ..., ``n_nodes`` nodes now."""

    @abstractmethod
    def deeper_cycle_times(self) -> np.ndarray:
        """Predicted seconds of this cycle after one more draft forward, verifying n = 0, 1, ...,
        ``n_nodes + width`` nodes (what the ``expected-depth`` rule weighs a continue by)."""

    @property
    def context_len(self) -> int:
        return self.prompt_len + self.position

    @property
    def n_nodes(self) -> int:
        return self.depth * self.width

    @property
    def cap(self) -> int:
        """Deepest allowed draft this cycle: max_depth, and no deeper than the tokens left need."""
        return max(1, min(self.max_depth, self.remaining - 1))

    def _push_history(self, accepted: int, depth: int) -> None:
        h, hist = HISTORY, self.hist
        hist[1:h] = hist[: h - 1]
        hist[h + 1 :] = hist[h:-1]
        hist[0] = accepted / self.max_depth
        hist[h] = depth / self.max_depth

    # -- action masks, shared by the env and by saved policies playing a partner ----------------
    def action_mask(self, role: str, size_action: str = "nodes", depth_action: str = "stop") -> np.ndarray:
        if role == "draft" and depth_action == "expected":
            return np.ones(len(SIZE_SCALES), dtype=bool)  # at the cap every scale stops
        if role == "draft":
            return np.array([self.depth < self.cap, True])
        if role == "verify" and size_action == "expected":
            return np.ones(len(SIZE_SCALES), dtype=bool)  # every scale sizes within the drafted nodes
        if role == "verify":
            return self._verify_range <= self.n_nodes
        return self._joint[:, 0] <= self.cap

    @property
    def joint_table(self) -> np.ndarray:
        return self._joint

    def n_actions(self, role: str, size_action: str = "nodes", depth_action: str = "stop") -> int:
        """Size of ``role``'s Discrete action space here (see :func:`n_actions`)."""
        return n_actions(role, self.max_depth, self.width, size_action, depth_action)


class LiveCycles(CycleSource):
    """The engine itself: real draft and target forwards on a :class:`ModelPair`."""

    def __init__(
        self,
        pair: ModelPair,
        prompts: Sequence[Sequence[int]],
        *,
        cost: CostModel,
        width: int = 1,
        max_depth: int = 8,
        max_new_tokens: int = 128,
        cost_features: str = "ratios",
    ):
        self._setup(width, max_depth, max_new_tokens, cost_features)
        if not prompts:
            raise SpecGymError("no prompts given; pass at least one")
        self.dec = SpeculativeDecoder(pair)
        self.prompts = [list(p) for p in prompts]
        for p in self.prompts:
            self.dec._check_prompt(p)
        self.set_cost(cost)
        self.pair_name, self.n_prompts = pair.name, len(self.prompts)
        self.max_context, self.vocab_size = pair.max_context, pair.vocab_size
        self._log_vocab = math.log(self.vocab_size)
        self.state = None
        self.drafter = None
        self.depth = 0

    def set_cost(self, cost: CostModel) -> None:
        self.cost, self.predicts = cost, not isinstance(cost, MeasuredCost)

    def start(self, prompt_index: int) -> None:
        self.prompt_index = prompt_index
        self.state = self.dec.start(self.prompts[prompt_index], self.max_new_tokens)
        self.hist[:] = -1.0
        self.drafter, self.depth = None, 0

    def begin_cycle(self) -> None:
        self.drafter = self.dec.begin_cycle(self.state, self.width)
        self.depth = 0

    def draft_step(self) -> None:
        self.drafter.step()
        self.depth = self.drafter.forwards

    def finish_cycle(self, n_verify: int | None = None) -> CycleResult:
        record = self.dec.finish_cycle(self.state, self.drafter, n_verify)
        new = len(record.new_tokens)
        result = CycleResult(
            context_len=record.context_len,
            depth=record.draft_forwards,
            n_verify=len(record.verified),
            accepted_len=min(record.accepted_len, new),
            new_tokens=new,
            draft_tokens_fed=list(record.draft_tokens_fed),
            verify_tokens_fed=record.verify_tokens_fed,
            time=self.cost.cycle_time(record),
            target_step_time=self._target_time(record.context_len, 1),
            target_time=self._target_time(record.context_len, new),
        )
        self._push_history(result.accepted_len, result.depth)
        self.drafter, self.depth = None, 0
        return result

    def _target_time(self, ctx: int, n: int) -> float:
        if not self.predicts:
            return math.nan
        return sum(self.cost.verify_time(1, ctx + j) for j in range(n))

    @property
    def done(self) -> bool:
        return self.state.done

    @property
    def position(self) -> int:
        return len(self.state.tokens) - self.state.prompt_len

    @property
    def prompt_len(self) -> int:
        return self.state.prompt_len

    @property
    def remaining(self) -> int:
        return self.state.remaining

    @property
    def pending(self) -> int:
        return len(self.state.tokens) - self.state.draft_cached

    def _best(self) -> int:
        tree, w = self.drafter.tree, self.width
        last = tree.cum_logprobs[-w:]
        return len(tree.tokens) - w + int(np.argmax(last))

    @property
    def newest_prob(self) -> float:
        return self.drafter.tree.probs[self._best()] if self.depth else 1.0

    @property
    def best_logprob(self) -> float:
        return self.drafter.tree.cum_logprobs[self._best()] if self.depth else 0.0

    def node_logprobs(self) -> np.ndarray:
        return np.array(self.drafter.tree.cum_logprobs) if self.depth else np.zeros(0)

    def cycle_times(self) -> np.ndarray:
        return self._predicted(0)

    def deeper_cycle_times(self) -> np.ndarray:
        return self._predicted(1)

    def _predicted(self, more_levels: int) -> np.ndarray:
        """Cycle seconds by verification size after ``more_levels`` further draft forwards; summed in
        the order a trace replay sums its tables, so both give the same decisions bit for bit."""
        if not self.predicts:
            raise SpecGymError("the measured cost model cannot predict a cycle's time; use a profiled or analytic one")
        ctx, c = self.context_len, self.cost
        fed = [*self.drafter.tokens_fed, *[self.width] * more_levels]
        drafted = sum([c.draft_time(n, ctx) for n in fed])
        n_nodes = self.n_nodes + more_levels * self.width
        return np.array([drafted + c.verify_time(1 + n, ctx) for n in range(n_nodes + 1)])

    def observation(self) -> np.ndarray:
        d, ctx, w = self.depth, self.context_len, self.width
        draft_cost = verify_cost = 0.0  # the wall clock cannot predict: no cost features
        profile = np.zeros(1 + self.max_depth)
        if self.predicts:
            t1 = self.cost.verify_time(1, ctx)
            draft_cost = self.cost.draft_time(w, ctx) / t1
            verify_cost = self.cost.verify_time(1 + d * w, ctx) / t1
            if self.cost_features == "profile":
                verify = np.array([[self.cost.verify_time(1 + n, ctx) for n in range(self.n_slots + 1)]])
                profile = profile_features(np.array([self.cost.draft_time(1, ctx)]), verify, self.max_depth, w)[0]
        tree = np.zeros(self.layout["node_logprobs"].stop - self.layout["newest_prob"].start)
        if d:
            drafted = self.drafter.tree
            cum = np.array(drafted.cum_logprobs).reshape(1, d, w)
            probs = np.array(drafted.probs[-w:]).reshape(1, w)
            ents = np.array(drafted.entropies[-w:]).reshape(1, w)
            tree = tree_features(cum, probs, ents, self.n_slots, self._log_vocab)[0]
        obs = cycle_features(
            self.layout,
            depth=np.asarray(d),
            max_depth=self.max_depth,
            context_frac=np.asarray(ctx / self.max_context),
            remaining_frac=np.asarray(self.remaining / self.max_new_tokens),
            draft_cost=np.asarray(draft_cost),
            verify_cost=np.asarray(verify_cost),
            tree=tree,
            profile=profile,
        )
        return np.concatenate((obs, self.hist)).astype(np.float32)
