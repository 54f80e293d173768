"""TraceReplay: draft-and-verify cycles from a recorded trace, at numpy speed, no model.

Greedy acceptance is a walk down the recorded tree matching the known output
(output[i], output[i+1], ...) through the verified nodes, so everything a cycle yields
(accepted length, tokens fed to each forward, cost-model time) is a table lookup. Per
prompt, on first use, we precompute:

- ``acc[i, d-1, n]``: accepted draft tokens at position ``i`` with a depth-``d`` tree whose
  top-``n`` nodes by cumulative draft log-prob (ties to the earlier node, as
  ``DraftTree.top_nodes``) are verified;
- the observation's tree and cost part for every (position, depth);
- cost-model times by context (``CostModel.grid``: the same numbers as the scalar calls the live
  cost model makes, summed in the same order, so rewards match live ones bit for bit).

The cost-free part of a prompt's tables (acceptance, the draft's tree) is kept across cost
models; ``set_cost`` (a cost family's draw per episode) rebuilds only the times and cost features.

The first draft forward of a cycle feeds 1 pending token, or 2 after a cycle that accepted
its whole depth (the newest level is never fed to the draft: see ``finish_cycle``).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from envs.specdec.cost import CostModel, MeasuredCost
from envs.specdec.cycles import CycleResult, CycleSource, cycle_features, profile_features, tree_features
from envs.specdec.errors import SpecGymError
from envs.specdec.trace import PromptTrace, Trace

CACHE_PROMPTS = 64  # prompts whose tables stay in memory


@dataclass
class PromptTables:
    """Everything replay reads for one prompt; positions run over the env's output (length ``n``)."""

    n: int
    prompt_len: int
    limit: int  # tokens the env may generate (max_new_tokens within the context window)
    acc: np.ndarray  # [n, D, D*W + 1] accepted draft tokens
    feat: np.ndarray  # [n + 1, D + 1, F] observation without history (float32)
    best_prob: np.ndarray  # [n, D] newest level's best node: draft prob
    best_cum: np.ndarray  # [n, D] ... and cumulative log-prob
    cum: np.ndarray  # [n, D, W] every node's cumulative log-prob, creation order
    draft_first: np.ndarray  # [n, 2] draft forward feeding 1 or 2 pending tokens
    draft_level: np.ndarray  # [n] draft forward feeding a level of W nodes
    verify: np.ndarray  # [n + 1, D*W + 1] target forward: pending token + n nodes
    cap: np.ndarray  # [n + 1] deepest allowed draft


@dataclass
class _CostFree:
    """The part of a prompt's tables no cost model changes."""

    n: int
    prompt_len: int
    limit: int
    acc: np.ndarray
    tree: np.ndarray  # [n + 1, D + 1, 2 + W + D*W] tree features
    best_prob: np.ndarray
    best_cum: np.ndarray
    cum: np.ndarray
    cap: np.ndarray


def accepted_table(pt: PromptTrace, n: int, depth: int, width: int) -> np.ndarray:
    """``acc[i, d-1, k]`` for positions ``i < n`` (see the module docstring)."""
    tokens, parents = pt.tokens[:n, :depth], pt.parents[:n, :depth]
    k = depth * width
    out = np.asarray(pt.output[:n], np.int64)
    idx = np.arange(n)[:, None] + np.arange(depth)[None, :]
    target = np.where(idx < n, out[np.minimum(idx, n - 1)], -1)  # output[i + l]; none past the end
    match = np.full((n, depth), -1)
    prev = np.full(n, -1)
    for level in range(depth):
        hit = (tokens[:, level, :] == target[:, level, None]) & (parents[:, level, :] == prev[:, None])
        found = hit.any(axis=1)
        flat = level * width + hit.argmax(axis=1)
        match[:, level] = np.where(found, flat, -1)
        prev = np.where(found, flat, -2)  # -2: no node has it as parent, the walk is over
    # rank of every node in the verification order, then among the nodes of a depth-d tree only
    order = np.argsort(-pt.cum_logprobs[:n, :depth].reshape(n, k), axis=1, kind="stable")
    place = np.empty_like(order)
    np.put_along_axis(place, order, np.arange(k)[None, :].repeat(n, 0), axis=1)
    before = np.cumsum(place[:, :, None] < place[:, None, :], axis=1)  # [n, m, node]: #{m' <= m ahead}
    sizes = np.arange(k + 1)
    acc = np.zeros((n, depth, k + 1), np.int16)
    safe = np.maximum(match, 0)
    for d in range(1, depth + 1):
        rank = np.take_along_axis(before[:, d * width - 1, :], safe, axis=1)  # [n, depth]
        rank = np.where((match >= 0) & (np.arange(depth)[None, :] < d), rank, k + 1)
        walk = np.cumprod(rank[:, :, None] < sizes[None, None, :], axis=1)
        acc[:, d - 1, :] = walk.sum(axis=1)
    return acc


class TraceReplay(CycleSource):
    """A :class:`CycleSource` over a recorded :class:`Trace` (greedy decoding only)."""

    def __init__(
        self,
        trace: Trace | str,
        *,
        cost: CostModel,
        width: int | None = None,
        max_depth: int | None = None,
        max_new_tokens: int | None = None,
        cost_features: str = "ratios",
    ):
        trace = trace if isinstance(trace, Trace) else Trace.load(trace)
        meta = trace.meta
        width = trace.width if width is None else width
        max_depth = trace.max_depth if max_depth is None else max_depth
        max_new_tokens = int(meta["max_new_tokens"]) if max_new_tokens is None else max_new_tokens
        if width != trace.width:
            raise SpecGymError(
                f"trace was recorded with width {trace.width}, not {width}; pass width={trace.width} "
                "or record a trace with --width " + str(width)
            )
        if max_depth > trace.max_depth:
            raise SpecGymError(
                f"trace holds trees to depth {trace.max_depth}, not {max_depth}; pass max_depth <= "
                f"{trace.max_depth} or record with --max-depth {max_depth}"
            )
        if max_new_tokens > int(meta["max_new_tokens"]):
            raise SpecGymError(
                f"trace outputs stop at {meta['max_new_tokens']} new tokens; pass max_new_tokens <= "
                f"{meta['max_new_tokens']} or record with --max-new-tokens {max_new_tokens}"
            )
        if isinstance(cost, MeasuredCost):
            raise SpecGymError("replay cannot measure wall clock; use a profiled .json or 'analytic' cost model")
        self._setup(width, max_depth, max_new_tokens, cost_features)
        self.trace, self.cost = trace, cost
        self.pair_name = meta["pair"]
        self.max_context, self.vocab_size = int(meta["max_context"]), int(meta["vocab_size"])
        self.n_prompts = trace.n_prompts
        self._log_vocab = math.log(self.vocab_size)
        self._tables: OrderedDict[int, PromptTables] = OrderedDict()
        self._free: OrderedDict[int, _CostFree] = OrderedDict()
        self.cost_version = 0  # counts set_cost calls: plans made under another cost model are stale
        self.t: PromptTables | None = None
        self.depth = 0

    # -- per-prompt tables ----------------------------------------------------------------
    def set_cost(self, cost: CostModel) -> None:
        if isinstance(cost, MeasuredCost):
            raise SpecGymError("replay cannot measure wall clock; use a profiled .json or 'analytic' cost model")
        if cost is not self.cost:
            self.cost, self.cost_version = cost, self.cost_version + 1
            self._tables.clear()

    def tables(self, prompt_index: int) -> PromptTables:
        """The prompt's replay tables (built on first use, kept for the most recent prompts)."""
        t = self._tables.get(prompt_index)
        if t is None:
            t = self._build(prompt_index)
            self._tables[prompt_index] = t
            if len(self._tables) > CACHE_PROMPTS:
                self._tables.popitem(last=False)
        return t

    def _cost_free(self, i: int) -> _CostFree:
        f = self._free.get(i)
        if f is not None:
            return f
        pt, d_max, w, k = self.trace.prompt(i), self.max_depth, self.width, self.n_slots
        p = len(pt.prompt)
        limit = min(self.max_new_tokens, self.max_context - p)  # tokens this env may generate
        n = min(len(pt.output), limit)
        lay = self.layout
        cum = pt.cum_logprobs[:n, :d_max]
        best = cum.argmax(axis=2)  # [n, D]: best slot of each level
        tree = np.full((n + 1, d_max + 1, lay["node_logprobs"].stop - lay["newest_prob"].start), -1.0)
        for d in range(1, d_max + 1):
            tree[:n, d] = tree_features(cum[:, :d], pt.probs[:n, d - 1], pt.entropies[:n, d - 1], k, self._log_vocab)
        f = _CostFree(
            n=n,
            prompt_len=p,
            limit=limit,
            acc=accepted_table(pt, n, d_max, w),
            tree=tree,
            best_prob=np.take_along_axis(pt.probs[:n, :d_max], best[..., None], axis=2)[..., 0],
            best_cum=np.take_along_axis(cum, best[..., None], axis=2)[..., 0],
            cum=cum,
            cap=np.maximum(1, np.minimum(d_max, limit - np.arange(n + 1) - 1)),
        )
        self._free[i] = f
        if len(self._free) > CACHE_PROMPTS:
            self._free.popitem(last=False)
        return f

    def _times(self, f: _CostFree) -> tuple[np.ndarray, np.ndarray]:
        """Seconds by position: draft forwards feeding 1, 2 and W tokens [3, n + 1]; verifying
        1 + n tokens, n = 0..D*W [n + 1, D*W + 1]."""
        contexts = f.prompt_len + np.arange(f.n + 1)
        draft = self.cost.grid("draft", [1, 2, self.width], contexts)
        return draft, self.cost.grid("verify", np.arange(1, self.n_slots + 2), contexts).T

    def static_rates(self, n_prompts: int | None = None) -> np.ndarray:
        """Tokens/s of static k = 1..D over the first ``n_prompts`` (all by default): what rollouts of
        ``static-k`` give (up to float rounding), straight from the tables, for a rate per cost draw."""
        d_max, w = self.max_depth, self.width
        levels = np.arange(d_max)
        tokens, seconds = 0, np.zeros(d_max)
        for i in range(self.n_prompts if n_prompts is None else n_prompts):
            f = self._cost_free(i)
            draft, verify = self._times(f)
            n, cap = f.n, f.cap.tolist()
            acc = f.acc[:, levels, (levels + 1) * w].tolist()  # [n, D]: a depth-d tree verified whole
            whole = verify[:, (levels + 1) * w].tolist()
            first, level = draft[:2].T.tolist(), draft[2].tolist()
            tokens += n
            for k in range(1, d_max + 1):
                pos, pending, time = 0, 1, 0.0
                while pos < n:
                    d = min(k, cap[pos])
                    a = acc[pos][d - 1]
                    time += first[pos][pending - 1] + (d - 1) * level[pos] + whole[pos][d - 1]
                    pending = 2 if a == d else 1
                    pos += min(a + 1, n - pos)
                seconds[k - 1] += time
        return tokens / seconds

    def _build(self, i: int) -> PromptTables:
        f, d_max, w = self._cost_free(i), self.max_depth, self.width
        p, n = f.prompt_len, f.n
        pos = np.arange(n + 1)
        contexts = p + pos
        draft, verify = self._times(f)
        remaining = f.limit - pos
        feat = cycle_features(
            self.layout,
            depth=np.arange(d_max + 1)[None, :],
            max_depth=d_max,
            context_frac=(contexts / self.max_context)[:, None],
            remaining_frac=(remaining / self.max_new_tokens)[:, None],
            draft_cost=(draft[2] / verify[:, 0])[:, None],
            verify_cost=verify[:, np.arange(d_max + 1) * w] / verify[:, :1],
            tree=f.tree,
            profile=profile_features(draft[0], verify, d_max, w)[:, None, :],
        )
        return PromptTables(
            n=n,
            prompt_len=p,
            limit=f.limit,
            acc=f.acc,
            feat=feat.astype(np.float32),
            best_prob=f.best_prob,
            best_cum=f.best_cum,
            cum=f.cum,
            draft_first=draft[:2].T[:n],
            draft_level=draft[2][:n],
            verify=verify,
            cap=f.cap,
        )

    # -- the episode --------------------------------------------------------------------------
    def start(self, prompt_index: int) -> None:
        if not 0 <= prompt_index < self.n_prompts:
            raise SpecGymError(f"prompt index {prompt_index} out of range 0..{self.n_prompts - 1}")
        self.prompt_index = prompt_index
        self.t = self.tables(prompt_index)
        self.pos, self.depth, self._pending = 0, 0, 1
        self.hist[:] = -1.0

    def begin_cycle(self) -> None:
        self.depth = 0

    def draft_step(self) -> None:
        self.depth += 1

    def finish_cycle(self, n_verify: int | None = None) -> CycleResult:
        t, pos, d, w = self.t, self.pos, self.depth, self.width
        k = d * w
        n = k if n_verify is None else min(max(int(n_verify), 0), k)
        a = int(t.acc[pos, d - 1, n])
        left = t.n - pos
        new = a + 1 if a < left else left
        fed = [self._pending] + [w] * (d - 1)
        time = self._drafted() + float(t.verify[pos, n])
        result = CycleResult(
            context_len=t.prompt_len + pos,
            depth=d,
            n_verify=n,
            accepted_len=min(a, new),
            new_tokens=new,
            draft_tokens_fed=fed,
            verify_tokens_fed=1 + n,
            time=time,
            target_step_time=float(t.verify[pos, 0]),
            target_time=sum(t.verify[pos : pos + new, 0].tolist()),
        )
        self._pending = 2 if a == d else 1
        self.pos += new
        self.depth = 0
        self._push_history(result.accepted_len, d)
        return result

    def _drafted(self, more_levels: int = 0) -> float:
        """Seconds of this cycle's draft forwards (and ``more_levels`` further ones): the cost model's
        cycle_time term for term (sum order included), so rewards match live ones bit for bit."""
        t, pos, levels = self.t, self.pos, self.depth - 1 + more_levels
        return sum([float(t.draft_first[pos, self._pending - 1])] + [float(t.draft_level[pos])] * levels)

    def node_logprobs(self) -> np.ndarray:
        return self.t.cum[self.pos, : self.depth].reshape(-1)

    def cycle_times(self) -> np.ndarray:
        return self._drafted() + self.t.verify[self.pos, : self.n_nodes + 1]

    def deeper_cycle_times(self) -> np.ndarray:
        return self._drafted(1) + self.t.verify[self.pos, : self.n_nodes + self.width + 1]

    def new_tokens_by_size(self) -> np.ndarray:
        """After drafting: the tokens verifying the top n nodes would yield this cycle, for n =
        0..n_nodes (hindsight, so only a trace knows; ``finish_cycle`` yields entry n)."""
        t, left = self.t, self.t.n - self.pos
        accepted = t.acc[self.pos, self.depth - 1, : self.n_nodes + 1]
        return np.where(accepted < left, accepted + 1, left)

    def hindsight_level(self) -> tuple[int, float, float]:
        """After a draft forward: (draft tokens the tree so far would get accepted if verified whole,
        the seconds that forward adds to the cycle: its own and its level's share of verifying the
        whole tree, one target-only step's seconds); the seconds mean something from depth 2 on.
        Only a trace knows the first number before verification (DraftVerify's ``credit="token"``)."""
        t, i, d, w = self.t, self.pos, self.depth, self.width
        added = t.draft_level[i] + t.verify[i, d * w] - t.verify[i, (d - 1) * w]
        return int(t.acc[i, d - 1, d * w]), float(added), float(t.verify[i, 0])

    @property
    def done(self) -> bool:
        return self.pos >= self.t.n

    @property
    def position(self) -> int:
        return self.pos

    @property
    def prompt_len(self) -> int:
        return self.t.prompt_len

    @property
    def remaining(self) -> int:
        return self.t.limit - self.pos

    @property
    def cap(self) -> int:
        return int(self.t.cap[self.pos])

    @property
    def pending(self) -> int:
        return self._pending

    @property
    def newest_prob(self) -> float:
        return float(self.t.best_prob[self.pos, self.depth - 1]) if self.depth else 1.0

    @property
    def best_logprob(self) -> float:
        return float(self.t.best_cum[self.pos, self.depth - 1]) if self.depth else 0.0

    def observation(self) -> np.ndarray:
        return np.concatenate((self.t.feat[self.pos, self.depth], self.hist))
