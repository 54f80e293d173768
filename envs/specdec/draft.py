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
        ent = entropy(logp).tolist()
        base = [tree.cum_logprobs[p] if p >= 0 else 0.0 for p in parents]
        depth = (tree.depths[parents[0]] if parents[0] >= 0 else 0) + 1
        if width == 1 and not self.sampling.greedy:
            q = sampling_probs(logits[0], self.sampling)
            token = sample(q, self.state.generator)
            picks = [(0, token, float(logp[0, token]))]
            dists: list[torch.Tensor | None] = [q]
        else:
            vals, idx = logp.topk(width, dim=-1)
            cand = (vals + torch.tensor(base, device=vals.device)[:, None]).flatten()
            best = cand.topk(min(width, cand.numel())).indices.tolist()
            vals_l, idx_l = vals.flatten().tolist(), idx.flatten().tolist()
            picks = [(b // width, idx_l[b], vals_l[b]) for b in sorted(best)]
            dists = [None] * len(picks)
        tree.frontier = []
        for (row, token, lp), q_dist in zip(picks, dists, strict=False):
            tree.frontier.append(len(tree.tokens))
            tree.tokens.append(token)
            tree.parents.append(parents[row])
            tree.depths.append(depth)
            tree.probs.append(math.exp(lp))
            tree.entropies.append(ent[row])
            tree.cum_logprobs.append(base[row] + lp)
            tree.q.append(q_dist)
