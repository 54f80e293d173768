"""Drafting: the draft model grows a token tree level by level (a chain is width 1).

Each :meth:`Drafter.step` is one draft forward, so callers (LTD's depth policy) can stop
after any step. Level ``l`` nodes are fed together with a 4D attention mask that lets each
see the context and its own ancestors only; the top-W children by cumulative draft
log-prob form the next level (EAGLE-style). A width-1 sampling chain samples its token from
the draft distribution and keeps that distribution for the rejection rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from envs.specdec.cache import forward_with_cache
from envs.specdec.sampling import SamplingConfig, check_finite, entropy, log_probs, sample, sampling_probs
from envs.specdec.state import DecodeState, Timer, tree_attention_mask


def top_w_children(logp: torch.Tensor, base: torch.Tensor, width: int):
    """The next level of top-W trees: the W children with the highest cumulative draft log-prob among
    the top-W tokens of each frontier row, in (row, rank) order. The one expansion rule, for the live
    drafter (B = 1) and the trace recorder (a batch of positions).

    ``logp``: [B, R, V] float32 log-probs of the R frontier rows; ``base``: [B, R] float64
    cumulative log-probs of those rows (ranked in float32). Returns (row, token, lp, cum, ent),
    each [B, W]: the parent row, the token, its log-prob, its cumulative log-prob (float64) and the
    entropy of the distribution it came from.
    """
    b, r, _ = logp.shape
    ent = entropy(logp)  # [B, R]
    vals, idx = logp.topk(width, dim=-1)  # [B, R, W]
    cand = (vals + base.to(torch.float32)[..., None]).reshape(b, r * width)  # ranked in float32
    best = cand.topk(min(width, r * width), dim=-1).indices.sort(dim=-1).values
    row = torch.div(best, width, rounding_mode="floor")
    token = idx.reshape(b, -1).gather(1, best)
    lp = vals.reshape(b, -1).gather(1, best).double()
    cum = base.gather(1, row) + lp
    return row, token, lp, cum, ent.gather(1, row).double()


@dataclass
class DraftTree:
    """Draft nodes in creation order; see :class:`~envs.specdec.records.CycleRecord`."""

    tokens: list[int] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)
    depths: list[int] = field(default_factory=list)
    probs: list[float] = field(default_factory=list)
    entropies: list[float] = field(default_factory=list)
    cum_logprobs: list[float] = field(default_factory=list)
    q: list[torch.Tensor | None] = field(default_factory=list)  # sampled-from distributions
    frontier: list[int] = field(default_factory=list)  # newest level, not yet fed to the draft
    fed_pos: dict[int, int] = field(default_factory=dict)  # node -> draft cache position

    def __len__(self) -> int:
        return len(self.tokens)

    def ancestors(self, node: int) -> list[int]:
        path = []
        while node >= 0:
            path.append(node)
            node = self.parents[node]
        return path[::-1]

    def top_nodes(self, n: int | None) -> list[int]:
        """The ``n`` most probable nodes under the draft, in creation order.

        A child's cumulative log-prob never exceeds its parent's, and ties go to the earlier
        (shallower) node, so the set is closed under ancestors: a valid subtree to verify.
        """
        if n is None or n >= len(self.tokens):
            return list(range(len(self.tokens)))
        order = sorted(range(len(self.tokens)), key=lambda i: (-self.cum_logprobs[i], i))
        return sorted(order[:n])


class Drafter:
    """One cycle's drafting on the draft model; each :meth:`step` is one draft forward."""

    def __init__(self, model: torch.nn.Module, state: DecodeState, width: int, sampling: SamplingConfig):
        self.model = model
        self.state = state
        self.width = width
        self.sampling = sampling
        self.tree = DraftTree()
        self.context_len = len(state.tokens)
        self.forwards = 0
        self.tokens_fed: list[int] = []
        self.step_times: list[float] = []
        self.level_logp: list[torch.Tensor] = []  # per forward: log-probs (parents x vocab) it expanded

    @property
    def time(self) -> float:
        return sum(self.step_times)

    @torch.no_grad()
    def step(self) -> None:
        """Feed the newest level (or, first, the uncached context) and grow the next level."""
        st, device = self.state, self.state.device
        with Timer(device) as timer:
            if self.forwards == 0:
                feed = st.tokens[st.draft_cached :]
                positions = list(range(st.draft_cached, self.context_len))
                mask, parents = None, [-1]
                st.draft_cached = self.context_len
            else:
                parents = self.tree.frontier
                feed = [self.tree.tokens[i] for i in parents]
                positions = [self.context_len + self.tree.depths[i] - 1 for i in parents]
                mask = None
                if len(parents) > 1:
                    extras = [[self.tree.fed_pos[a] for a in self.tree.ancestors(i)[:-1]] for i in parents]
                    mask = tree_attention_mask(
                        st.draft_cache.get_seq_length(),
                        [self.context_len] * len(parents),
                        extras,
                        self.model.dtype,
                        device,
                    )
                base = st.draft_cache.get_seq_length()
                for j, i in enumerate(parents):
                    self.tree.fed_pos[i] = base + j
            out = forward_with_cache(
                self.model,
                st.draft_cache,
                input_ids=torch.tensor([feed], device=device),
                position_ids=torch.tensor([positions], device=device),
                attention_mask=mask,
            )
            logits = out.logits[0, -len(parents) :]
            check_finite(logits, "draft")
            self._expand(parents, logits)
        self.step_times.append(timer.elapsed)
        self.forwards += 1
        self.tokens_fed.append(len(feed))

    def _expand(self, parents: list[int], logits: torch.Tensor) -> None:
        tree, width = self.tree, self.width
        logp = log_probs(logits)
        self.level_logp.append(logp)
        base = [tree.cum_logprobs[p] if p >= 0 else 0.0 for p in parents]
        depth = (tree.depths[parents[0]] if parents[0] >= 0 else 0) + 1
        if width == 1 and not self.sampling.greedy:
            q = sampling_probs(logits[0], self.sampling)
            token = sample(q, self.state.generator)
            lp = float(logp[0, token])
            picks = [(0, token, lp, base[0] + lp, float(entropy(logp[0])))]
            dists: list[torch.Tensor | None] = [q]
        else:
            base_t = torch.tensor([base], dtype=torch.float64, device=logp.device)
            columns = top_w_children(logp[None], base_t, width)
            picks = list(zip(*(c[0].tolist() for c in columns), strict=True))
            dists = [None] * len(picks)
        tree.frontier = []
        for (row, token, lp, cum, ent), q_dist in zip(picks, dists, strict=True):
            tree.frontier.append(len(tree.tokens))
            tree.tokens.append(token)
            tree.parents.append(parents[row])
            tree.depths.append(depth)
            tree.probs.append(math.exp(lp))
            tree.entropies.append(ent)
            tree.cum_logprobs.append(cum)
            tree.q.append(q_dist)
