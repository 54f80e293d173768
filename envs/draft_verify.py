"""SpecGym/DraftVerify: when to stop drafting and how much to verify (LTD, 2026); see :class:`DraftVerifyEnv`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.base import PickleByConfig, discrete_action
from envs.pairs import shared_pair
from envs.pairs.replay_assets import BUNDLED_NAME, bundled_profile, bundled_trace
from envs.partners import make_policy
from envs.specdec.cost import MeasuredCost, make_cost_model
from envs.specdec.cost_family import check_family_name, describe, make_cost_family
from envs.specdec.cycles import (
    ROLES,
    CycleSource,
    LiveCycles,
    check_cost_features,
    check_depth_action,
    check_size_action,
    obs_bounds,
)
from envs.specdec.errors import SpecGymError
from envs.specdec.replay import TraceReplay
from envs.specdec.schedules import scaled_depth, scaled_size
from envs.specdec.trace import Trace
from envs.tasks.prompts import load_prompts
from envs.tasks.splits import SPLITS, split_seed

BACKENDS = ("live", "replay")
REWARDS = ("throughput", "net_tokens")
CREDITS = ("cycle", "token")
CONTINUE, STOP = 0, 1
DEFAULT_PARTNER = "static-4"
ACTION_MEANINGS = {
    "draft": "0 = continue drafting, 1 = stop and verify (depth_action='expected': an index into SIZE_SCALES)",
    "verify": "the number of drafted nodes to verify (size_action='expected': an index into SIZE_SCALES)",
    "joint": "an index into env.unwrapped.joint_table",
}
DEFAULT_LIVE_PROMPTS = 20
DEFAULT_LIVE_TOKENS = 128
# rate="best_static" under a cost family: the best static k of each draw, over this many prompts
# of the trace (all of them would cost more than the episode itself)
FAMILY_RATE_PROMPTS = 8


@lru_cache(maxsize=16)
def _prompt_texts(source: str | None, n: int, split: str) -> tuple[str, ...]:
    return tuple(load_prompts(source, n, split_seed(split)))


# rate="best_static" per replay setting: every env of a training run (its vectorised copies, the
# eval env, each stage) replays the same static schedules on the same trace
_BEST_STATIC: dict[tuple, float] = {}


def _best_static_rate(source: TraceReplay, traces: str, cost_model: str, n_prompts: int) -> float:
    path, profile = Path(traces), Path(str(cost_model))
    version = profile.stat().st_mtime_ns if profile.is_file() else None  # a profile rewritten in place
    key = (
        str(path.resolve()),
        path.stat().st_mtime_ns,
        str(cost_model),
        version,
        source.width,
        source.max_depth,
        source.max_new_tokens,
        n_prompts,
    )
    if key not in _BEST_STATIC:  # from the replay tables: what best_static_rate's rollouts give, 30x faster
        _BEST_STATIC[key] = float(source.static_rates(n_prompts).max())
    return _BEST_STATIC[key]


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise SpecGymError(f"unknown {name} {value!r}; choose one of {', '.join(allowed)}")


class DraftVerifyEnv(PickleByConfig, gym.Env):
    """SpecGym/DraftVerify-v0, -v1: when to stop drafting and how much to verify (LTD, 2026).

    ## Description

    Speculative decoding drafts tokens with a small model and verifies them in one forward of
    the target. "Learning to Draft" (LTD) learns two decisions with PPO: a depth policy that,
    after each draft forward, continues or stops, and a size policy that chooses how many of the
    drafted candidates (an EAGLE-style top-W tree) to send to the target. The reward is the
    throughput of each draft-and-verify cycle. Verification is greedy, so the generated text is
    the target's greedy output whatever the agent does; only the time changes.

    Time comes from a cost model (``cost_model``): ``analytic`` (default, tests), a profiled
    latency table (``path/to/profile.json`` from ``python -m experiments.benchmark cost``; use
    it for training) or ``measured`` (wall clock, live backend only). The ``replay`` backend
    replays a trace recorded once per pair (``python -m experiments.record_traces``) at numpy
    speed and gives exactly the live engine's results for the same actions.

    ## Action Space

    - ``role="draft"``: ``Discrete(2)``, 0 = continue drafting, 1 = stop and verify. Asked after
      each draft forward. At the cycle's cap (``max_depth``, or fewer when fewer tokens remain)
      only stop is valid (``action_masks()``); continue there is treated as stop. The partner
      chooses the verification size. With ``depth_action="expected"`` it is ``Discrete(38)``
      instead, all valid: a scale s from ``envs.specdec.cycles.SIZE_SCALES`` on the draft's acceptance
      estimates inside the cost-aware ``expected-depth`` rule, which keeps drafting while one more
      level is expected to raise the cycle's throughput (best over sizes of (1 + s * the expected
      accepted nodes) / the predicted cycle seconds, the next level's nodes estimated from the
      frontier's): s = 1 is the rule, s = 0 stops, larger s drafts deeper. The rule reads the cost
      model, so a policy that starts near it drafts deeper on a device with a cheap draft.
    - ``role="verify"``: ``Discrete(max_depth * width + 1)`` = number of drafted nodes to verify
      (the top ones by cumulative draft log-prob; 0 = a plain target step). Asked once per cycle
      after the partner has drafted. ``action_masks()`` masks sizes above the nodes drafted;
      a larger size verifies all of them. With ``size_action="expected"`` it is
      ``Discrete(38)`` instead, all valid: a scale s from ``envs.specdec.cycles.SIZE_SCALES`` (0,
      then 1/20 to 20 evenly in log, 1 among them) on the draft's acceptance estimates inside the
      ``expected`` size rule, which verifies the n top nodes maximising (1 + s * the sum of their
      path probabilities) / the cycle's predicted time: s = 1 is the rule, s = 0 a plain target
      step, larger s verifies more. A policy starts near the rule's sizes and, if it collapses to
      one action, still sizes every cycle by the rule (the node-count size policy collapsed to
      "verify everything" on chat work).
    - ``role="joint"``: ``Discrete(len(joint_actions))``: one action per cycle, before drafting,
      choosing a (depth d, size n) pair with 1 <= n <= d * width, ordered by d then n
      (``env.unwrapped.joint_table[a]`` gives the pair). A flat Discrete over valid pairs rather
      than MultiDiscrete, because the valid sizes depend on the depth. Depths above the cycle's
      cap are masked (and clipped to it if chosen).

    An action outside ``action_space`` (a negative or too large one, a float, a string, several
    values) raises ``SpecGymError``; Python and numpy integers and one-element integer arrays
    (as SB3 passes them) are accepted.

    ## Observation Space

    ``Box(-1, 1, (7 + W + D*W + 8,), float32)`` (the two cost ratios go up to 100), D =
    ``max_depth``, W = ``width``; the same layout in every role (so saved policies can partner
    each other), computed identically by both backends:

    | index | feature |
    |---|---|
    | 0 | draft forwards so far this cycle / D (0 in the joint role, which decides before drafting) |
    | 1 | context length / the pair's context window |
    | 2 | tokens still allowed / ``max_new_tokens`` |
    | 3 | cost of one draft forward of W tokens / cost of one target-only step (cost model, this context) |
    | 4 | cost of verifying every drafted node / cost of one target-only step |
    | 5 | draft prob of the newest level's best node (by cumulative log-prob) (0 before drafting) |
    | 6 | entropy of the draft distribution it came from / ln(vocabulary) (0 before drafting) |
    | 7 .. 7+W-1 | newest level's cumulative draft log-probs, sorted descending |
    | 7+W .. 7+W+D*W-1 | every drafted node's cumulative draft log-prob, sorted descending |
    | next 4 | accepted length / D of the last 4 cycles, newest first |
    | next 4 | draft depth / D of the last 4 cycles, newest first |

    Log-probs are divided by 5 and clipped to [-1, 0] (a node below e^-5 reads like an empty slot);
    slots with no node or no past cycle are -1. Under ``cost_model="measured"`` indices 3 and 4
    are 0 (wall clock does not predict).

    With ``cost_features="profile"`` (for policies meant to serve several cost profiles, e.g.
    under ``cost_family``) ``D + 1`` features follow index 4, describing the cost model's shape at
    the current context, each over one target-only step (clipped at 100), and the rest move up by
    ``D + 1`` (``Box`` of ``(7 + W + D*W + 8 + D + 1,)``):

    | index | feature |
    |---|---|
    | 5 | cost of one draft forward feeding 1 token |
    | 6 .. 6+D-1 | cost of verifying a whole depth-l tree (1 + l*W tokens), l = 1..D: verification's slope |

    The index ranges live in ``envs.specdec.cycles.obs_layout``.

    ## Rewards

    Given at the end of each cycle (0 on draft-role continue steps). ``tokens`` = accepted draft
    tokens + 1 (the target's correction or bonus token), fewer when EOS or ``max_new_tokens``
    cuts the cycle; ``time`` = the cycle's draft forwards + its verification under the cost model.

    - ``reward="throughput"`` (LTD): ``tokens / time`` in tokens per second.
    - ``reward="net_tokens"``: ``tokens - rate * time``; ``rate`` defaults to the target-only
      decoding rate at the cycle's context, ``1 / verify_time(1, context)``. The output (and so
      the total tokens) is fixed, so maximising the return minimises total time measured in
      target-only steps: it maximises long-run tokens/s relative to target-only decoding (a
      cycle pays off exactly when its reward is positive). A constant ``rate`` maximises plain
      long-run tokens/s. ``rate="best_static"`` (replay) takes the best static k's tokens/s on the
      env's trace: a learner that discounts (gamma < 1) weighs each cycle nearly alone, and a cycle's
      tokens - rate * time is the right thing to maximise alone when ``rate`` is the throughput to
      beat (Dinkelbach's method for ratios); at the target-only rate tokens are overpriced against
      time and such a learner over-drafts.

    ``credit="token"`` (replay, ``net_tokens``; a training aid for the draft role) pays a cycle's
    reward as it accrues instead of all at the stop: each continue step gets the draft tokens its
    forward adds to the accepted run if the tree were verified whole (the trace knows) minus
    ``rate`` times the time it adds (the forward, and verifying its level with the rest), and the
    stop step the rest of the cycle's reward. Every cycle's rewards sum to the same total as under
    the default ``credit="cycle"``, so undiscounted returns and the best policy are unchanged, and
    the policy never observes the outcome (observations are the same); but each decision's
    consequence shows in its own step's reward instead of several steps later, mixed with the rest
    of the cycle's luck. In the verify and joint roles every step ends a cycle, so the two credits
    are the same there. The live engine cannot know acceptance before verifying, so it has only
    ``cycle``.

    ## Starting State

    A prompt is drawn uniformly with the env's RNG (or ``reset(options={"prompt_index": i})``),
    the target and draft prefill it, and the env runs to the first decision: after the first
    draft forward (draft), after the partner's drafting (verify), or at cycle start (joint).

    ## Episode End

    One episode is one prompt's whole generation, because what a decision should be depends on
    the cycles before it within that generation: the acceptance history (observed, and driving
    schedule partners such as ``heuristic``), the growing context (cost), and whether the last
    cycle accepted its whole draft (the next first draft forward then feeds 2 tokens). It
    terminates at EOS or after ``max_new_tokens`` (or the context window); it is never
    truncated. ``info`` at each cycle's end: ``accepted_len``, ``new_tokens``, ``depth``,
    ``n_verify``, ``cycle_time``, ``tokens_generated``, ``context_len``, ``prompt_index``.

    ## Arguments

    All JSON-serialisable, so ``env.spec.to_json()`` works:

    - ``pair``: registered pair name (``tiny-random``, ``smollm2-135m``).
    - ``role``: ``draft`` | ``verify`` | ``joint``.
    - ``backend``: ``live`` (the engine) | ``replay`` (a recorded trace; needs ``traces``).
    - ``traces``: ``.npz`` from ``python -m experiments.record_traces`` (replay); it must be for
      this ``pair`` and ``width``, with ``max_depth`` and ``max_new_tokens`` at most its own.
      ``"bundled"``: the trace of ``pair``, ``split`` and ``width`` shipped with the repository
      (``smollm2-135m``, width 4, depth 8: 48 train and 24 held-out prompts; see
      ``envs/pairs/assets/smollm2-135m-replay/README.md``).
    - ``prompts``: None (generated reasoning-gym questions), a ``.jsonl`` path, or comma-separated
      reasoning-gym task names; replay takes the trace's prompts (a different ``prompts`` is an error).
    - ``n_prompts``: how many (live default 20; replay default all in the trace).
    - ``split``: ``heldout`` (default) | ``train``: which seed generated prompts come from.
    - ``max_new_tokens`` (live default 128; replay default the trace's), ``width`` (1 = chain), ``max_depth``.
    - ``reward``: ``throughput`` | ``net_tokens``; ``rate``: tokens/s for ``net_tokens`` (default above),
      or ``"best_static"`` (replay; see Rewards).
    - ``credit``: ``cycle`` (default) | ``token`` (see Rewards).
    - ``cost_model``: ``analytic`` | ``measured`` (live) | a profile ``.json`` path | ``"bundled"``: the
      profile shipped with ``pair`` (``smollm2-135m``: calibrated on a CPU, AMD EPYC, bfloat16; its
      file name names the device).
    - ``cost_family``: None (default: ``cost_model`` every episode) or a family the cost model is
      drawn from at each ``reset`` with the env's RNG (``info["cost"]`` says what was drawn); a
      policy meant to transfer between devices trains under one. ``cost_model`` is the family's
      calibrated member. Families (``envs.specdec.cost_family``, where the ranges and their
      sources are written down):

      - ``calibrated``: ``cost_model`` as it is (the pair's profile calibrated on this device).
      - ``calibrated-perturbed``: ``cost_model`` with draft forwards 0.5-2x as long and the extra
        cost of verifying more than one token 0.5-2x as large (log-uniform).
      - ``gpu``: GPU-shaped analytic profiles (not measured: assumptions after published
        measurements): a draft forward at 2-10% of a target step; verification flat (0-0.5% per
        token) up to a knee of 16-64 tokens, then rising by 0.5-1x a step per knee of tokens; a
        target step 1-10% longer per 1000 tokens of context.
      - ``gpu-perturbed``: a ``gpu`` draw perturbed as ``calibrated-perturbed`` is.
      - ``mixed``: one of the four above, uniformly, each episode.

      ``rate="best_static"`` is then each draw's best static k's tokens/s over the trace's first
      8 prompts.
    - ``cost_features``: ``ratios`` (default: the layout above) | ``profile`` (adds the cost
      profile's shape; see Observation Space).
    - ``size_action``: ``nodes`` (default) | ``expected`` (role ``verify`` only): what the size
      action means (see Action Space).
    - ``depth_action``: ``stop`` (default) | ``expected`` (role ``draft`` only): what the depth
      action means (see Action Space).
    - ``partner``: the policy playing the other role (draft and verify roles): ``static-K``,
      ``heuristic``, ``confidence[-T]``, ``specdec++[-T]``, ``expected`` (a size rule), ``oracle`` or
      ``oracle-depth`` (replay), a saved SB3 ``.zip`` of the other role, or a published policy's name
      (``envs/policies``: its policy of the other role; see ``envs.partners``); default
      ``static-4`` (drafts 4, at most ``max_depth``, and, as every depth rule, verifies everything). The
      thresholds T are probabilities in (0, 1]; a ``static-K`` depth partner needs K <= ``max_depth``.
    - ``device`` (``auto``, ``cpu``, ``cuda[:N]``), ``dtype``: for the live models (default: per device).
    - ``seed``: seed of the first ``reset()`` called without one.

    Pickling keeps the configuration, not an episode in progress: call ``reset()`` after unpickling.

    ## Registered Configurations

    - ``SpecGym/DraftVerify-v0``: the defaults above (depth role, chain, tiny-random, live).
    - ``SpecGym/DraftVerify-Draft-v0`` / ``SpecGym/DraftVerify-Verify-v0``: LTD's depth and size
      roles over the same width-4 tree, so a policy saved from one is a valid ``partner`` of the
      other (co-adaptive training).
    - ``SpecGym/DraftVerify-Joint-v0``: joint role, chain.
    - ``SpecGym/DraftVerify-Tiny-v0``: depth role, 4 short prompts, 32 tokens (smoke tests).
    - ``SpecGym/DraftVerify-v1``: the real pair out of the box: depth role over a width-4 tree of
      ``smollm2-135m`` on replay, from its bundled traces (held-out prompts; ``split="train"`` for
      the training ones) under its bundled cost profile; ``gym.make`` loads no model and downloads
      nothing, and any other argument above still applies (``role="verify"``, ``partner=`` ...).
      The cost model is the pair's calibrated CPU profile rather than an analytic or GPU-shaped
      one: it is what this pair measurably costs on a real device (draft forward and verification
      by size and context, with their calibration spreads), while an analytic model's constants
      describe no device; a GPU's profile, calibrated by ``python -m experiments.gpu_suite``, or
      any other is one ``cost_model=`` away.

    ## Version History

    - v0: the initial version: LTD's depth (``draft``), size (``verify``) and ``joint`` decisions over
      greedy draft-and-verify cycles, on the live engine or a recorded trace, rewarded by throughput
      or ``net_tokens``, with the observation layout above. ``cost_family``, ``cost_features`` and
      ``size_action`` and ``depth_action`` were added later with defaults that keep every ``-v0`` id's
      behaviour and layout.

    - v1: the defaults become the real pair on replay (``pair="smollm2-135m"``, ``backend="replay"``,
      ``traces="bundled"``, ``width=4``, ``cost_model="bundled"``); the observation layout, rewards
      and dynamics are v0's. The ``-v0`` ids are unchanged.

    A change to a default behaviour (the observation layout, the reward, a default argument, ...)
    gets a new id version; the older ids keep their meaning.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        pair: str = "tiny-random",
        role: str = "draft",
        backend: str = "live",
        traces: str | None = None,
        prompts: str | None = None,
        n_prompts: int | None = None,
        split: str = "heldout",
        max_new_tokens: int | None = None,
        width: int = 1,
        max_depth: int = 8,
        reward: str = "throughput",
        rate: float | str | None = None,
        credit: str = "cycle",
        cost_model: str = "analytic",
        cost_family: str | None = None,
        cost_features: str = "ratios",
        size_action: str = "nodes",
        depth_action: str = "stop",
        partner: str | None = None,
        device: str = "auto",
        dtype: str | None = None,
        seed: int | None = None,
    ):
        self._kwargs = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        for name, value, allowed in (
            ("role", role, ROLES),
            ("backend", backend, BACKENDS),
            ("reward", reward, REWARDS),
            ("split", split, SPLITS),
            ("credit", credit, CREDITS),
        ):
            _choice(name, value, allowed)
        if credit == "token" and (backend, reward) != ("replay", "net_tokens"):
            raise SpecGymError(
                "credit='token' needs backend='replay' and reward='net_tokens' (it pays draft steps by the "
                "trace's outcome, additively); use credit='cycle' otherwise"
            )
        self.credit, self._paid, self._run = credit, 0.0, 0  # paid so far this cycle, accepted run so far
        self.role, self.reward_kind = role, reward
        if cost_model == BUNDLED_NAME:
            cost_model = str(bundled_profile(pair))
        if traces == BUNDLED_NAME and backend == "replay":
            traces = str(bundled_trace(pair, split, width))
        check_cost_features(cost_features)
        self.size_action = check_size_action(size_action, role)
        self.depth_action = check_depth_action(depth_action, role)
        if cost_family is not None:
            check_family_name(cost_family)
        cost = make_cost_model(cost_model)
        self.family = None if cost_family is None else make_cost_family(cost_family, cost)
        if reward == "net_tokens" and rate is None and isinstance(cost, MeasuredCost):
            raise SpecGymError("net_tokens under the measured cost model needs an explicit rate= (tokens/s)")
        if rate == "best_static" and backend != "replay":
            raise SpecGymError(
                "rate='best_static' replays static schedules on the trace: it needs backend='replay'; "
                "pass a number of tokens/s otherwise"
            )
        if rate is not None and reward != "net_tokens":
            raise SpecGymError(
                f"rate= prices time in reward='net_tokens'; reward={reward!r} has none: drop rate "
                "or pass reward='net_tokens'"
            )
        if rate != "best_static" and rate is not None and not (isinstance(rate, int | float) and rate > 0):
            raise SpecGymError(f"rate must be > 0 tokens/s or 'best_static', got {rate!r}")
        if backend == "live":
            self.source: CycleSource = self._live(pair, prompts, n_prompts, split, cost, device, dtype)
        else:
            self.source = self._replay(pair, traces, prompts, n_prompts, split, cost)
        src = self.source
        self.n_prompts = src.n_prompts if n_prompts is None or backend == "live" else n_prompts
        self._rate_kind = rate
        if rate == "best_static":  # under a family: each draw's, at reset
            rate = None if self.family else _best_static_rate(src, traces, cost_model, self.n_prompts)
        self.rate: float | None = rate
        self.partner = self._make_partner(partner)
        low, high = obs_bounds(src.max_depth, src.width, cost_features)
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self.action_space = spaces.Discrete(src.n_actions(role, size_action, depth_action))
        self.joint_table = src.joint_table
        self._seed, self._seeded, self._active = seed, False, False

    # -- construction helpers ---------------------------------------------------------------
    def _live(self, pair, prompts, n_prompts, split, cost, device, dtype) -> LiveCycles:
        kw = self._kwargs
        model_pair = shared_pair(pair, device, dtype)
        n = DEFAULT_LIVE_PROMPTS if n_prompts is None else n_prompts
        if n < 1:
            raise SpecGymError(f"n_prompts must be >= 1, got {n}")
        ids = [model_pair.encode(text) for text in _prompt_texts(prompts, n, split)]
        return LiveCycles(
            model_pair,
            ids,
            cost=cost,
            width=kw["width"],
            max_depth=kw["max_depth"],
            max_new_tokens=DEFAULT_LIVE_TOKENS if kw["max_new_tokens"] is None else kw["max_new_tokens"],
            cost_features=kw["cost_features"],
        )

    def _replay(self, pair, traces, prompts, n_prompts, split, cost) -> TraceReplay:
        kw = self._kwargs
        if traces is None:
            raise SpecGymError(
                "backend='replay' needs traces=FILE.npz; record one with python -m experiments.record_traces"
            )
        trace = Trace.load(traces)
        meta = trace.meta
        if meta["pair"] != pair:
            raise SpecGymError(f"trace {traces!r} was recorded for pair {meta['pair']!r}; pass pair={meta['pair']!r}")
        if prompts is not None and prompts != meta.get("prompts"):
            raise SpecGymError(
                f"trace {traces!r} holds prompts from {meta.get('prompts')!r}, not {prompts!r}; "
                "leave prompts unset for replay or record a trace for them"
            )
        if split != meta.get("split", split):
            raise SpecGymError(
                f"trace {traces!r} holds the {meta.get('split')!r} split; pass split={meta.get('split')!r}"
            )
        if n_prompts is not None and not 1 <= n_prompts <= trace.n_prompts:
            raise SpecGymError(f"trace {traces!r} holds {trace.n_prompts} prompts; pass n_prompts <= that")
        return TraceReplay(
            trace,
            cost=cost,
            width=kw["width"],
            max_depth=kw["max_depth"],
            max_new_tokens=kw["max_new_tokens"],
            cost_features=kw["cost_features"],
        )

    def _make_partner(self, partner: str | None):
        if self.role == "joint":
            if partner is not None:
                raise SpecGymError("the joint role makes both decisions; leave partner unset")
            return None
        other = "verify" if self.role == "draft" else "draft"
        # a depth partner named static-K deeper than max_depth is refused (drafting stops there); the
        # default static-4 is capped at a lower max_depth, and a size partner's K does not matter
        depth = self.source.max_depth if partner is not None and other == "draft" else None
        return make_policy(partner or DEFAULT_PARTNER, source=self.source, role=other, max_depth=depth)

    # -- Gymnasium API ----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        if seed is None and not self._seeded:
            seed = self._seed
        super().reset(seed=seed)
        self._seeded = True
        self._paid = 0.0  # an episode left mid-cycle must not charge the next one
        options = options or {}
        index = options.get("prompt_index")
        if index is None:
            index = int(self.np_random.integers(self.n_prompts))
        elif not (isinstance(index, int | np.integer) and 0 <= index < self.n_prompts):
            raise SpecGymError(f"prompt_index must be an integer in 0..{self.n_prompts - 1}, got {index!r}")
        info = {"prompt_index": int(index), "tokens_generated": 0}
        if self.family is not None:
            info["cost"] = self._draw_cost()
        self.source.start(int(index))
        if self.partner is not None:
            self.partner.reset()
        self._to_decision()
        self._active = True
        return self.source.observation(), info

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        if not self._active:
            raise SpecGymError("call reset() before step() (the episode has ended or never started)")
        src, a = self.source, discrete_action(action, self.action_space, ACTION_MEANINGS[self.role])
        if self.role == "draft":
            # at the cap every action stops (the rule is not asked: no deeper level fits the tree)
            keep = src.depth < src.cap and (scaled_depth(src, a) if self.depth_action == "expected" else a == CONTINUE)
            if keep:
                src.draft_step()
                info = {
                    "depth": src.depth,
                    "tokens_generated": src.position,
                    "prompt_index": src.prompt_index,
                }
                return src.observation(), self._accrued(), False, False, info
            return self._finish(self.partner.verify_size(src))
        if self.role == "verify":
            return self._finish(a if self.size_action == "nodes" else scaled_size(src, a))
        depth, size = self.joint_table[a]
        src.begin_cycle()
        for _ in range(min(int(depth), src.cap)):
            src.draft_step()
        return self._finish(int(size))

    def action_masks(self) -> np.ndarray:
        """Valid actions now (for sb3-contrib's MaskablePPO)."""
        return self.source.action_mask(self.role, self.size_action, self.depth_action)

    # -- internals --------------------------------------------------------------------------
    def _draw_cost(self) -> dict:
        """This episode's cost model from the family (and, for ``rate="best_static"``, its rate)."""
        cost = self.family.draw(self.np_random)
        self.source.set_cost(cost)
        if self._rate_kind == "best_static":
            self.rate = float(self.source.static_rates(min(self.n_prompts, FAMILY_RATE_PROMPTS)).max())
        return describe(cost)

    def _to_decision(self) -> None:
        """Run the next cycle up to the agent's decision point."""
        src, partner = self.source, self.partner
        if partner is not None:
            partner.plan(src)
        if self.role == "joint":
            return
        src.begin_cycle()
        src.draft_step()
        if self.credit == "token" and self.role == "draft":  # the first forward is no decision: paid at the stop
            self._run = src.hindsight_level()[0]
        if self.role == "verify":
            while src.depth < src.cap and partner.keep_drafting(src):
                src.draft_step()

    def _accrued(self) -> float:
        """A continue step's reward: 0, or under ``credit="token"`` what its draft forward added."""
        if self.credit == "cycle":
            return 0.0
        accepted, added_time, step_time = self.source.hindsight_level()
        rate = self.rate if self.rate is not None else 1.0 / step_time
        reward = (accepted - self._run) - rate * added_time
        self._paid, self._run = self._paid + reward, accepted
        return reward

    def _finish(self, n_verify: int):
        src = self.source
        result = src.finish_cycle(min(max(n_verify, 0), src.n_nodes))
        if self.partner is not None:
            self.partner.observe(result)
        if self.reward_kind == "throughput":
            reward = result.new_tokens / result.time
        else:
            rate = self.rate if self.rate is not None else 1.0 / result.target_step_time
            reward = result.new_tokens - rate * result.time - self._paid
        self._paid = 0.0
        done = src.done
        if not done:
            self._to_decision()
        self._active = not done
        info = {
            "accepted_len": result.accepted_len,
            "new_tokens": result.new_tokens,
            "depth": result.depth,
            "n_verify": result.n_verify,
            "cycle_time": result.time,
            "tokens_generated": src.position,
            "context_len": result.context_len,
            "prompt_index": src.prompt_index,
        }
        return src.observation(), float(reward), done, False, info
