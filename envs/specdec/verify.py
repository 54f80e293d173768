"""Verification: one target forward over the pending context token(s) and the drafted nodes,
then acceptance.

Acceptance rules, all lossless:
- greedy: walk the tree while the target's argmax is a drafted child;
- a sampled chain (draft tokens drawn from q): the speculative-sampling rejection rule,
  accept x with prob min(1, p(x)/q(x)), else resample from norm(max(p - q, 0));
- deterministic candidates (a top-W tree, any width): draw x ~ p at the current node and
  move to the child holding x if there is one. The emitted token is always a draw from p,
  and this equals the sequential rejection rule for point-mass drafts (SpecInfer).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from envs.specdec.cache import forward_with_cache, keep_positions
from envs.specdec.draft import DraftTree
from envs.specdec.sampling import SamplingConfig, check_finite, sample, sampling_probs
from envs.specdec.state import DecodeState, tree_attention_mask


@dataclass
class Verdict:
    accepted: list[int]  # node indices, root to leaf
    final_token: int  # correction or bonus token
    target_probs: list[float]  # target P(token | parent), temperature 1, per verified node
    tokens_fed: int  # tokens in the target forward: pending context token(s) + verified nodes


def _is_chain(tree: DraftTree, selected: list[int]) -> bool:
    return all(tree.parents[n] == (selected[j - 1] if j else -1) for j, n in enumerate(selected))


@dataclass
class Scored:
    """One target forward over the pending context token(s) and the ``selected`` nodes."""

    logits: torch.Tensor  # row 0: after the context; row 1 + j: after selected[j]
    row_of: dict[int, int]  # node -> its row in the forward (before the shift above)
    pending: int  # pending context tokens fed first (m)
    parent_rows: list[int]  # per selected node: the logits row of its parent
    target_probs: list[float]  # target P(token | parent), temperature 1, per selected node
    tokens_fed: int


@torch.no_grad()
def target_forward(model: torch.nn.Module, state: DecodeState, tree: DraftTree, selected: list[int]) -> Scored:
    """Score ``selected`` nodes with the target in one forward (the cache keeps every row until
    :func:`trim_target`)."""
    device, ctx = state.device, len(state.tokens)
    tail = state.tokens[state.target_cached :]
    cached, m = state.target_cached, len(tail)
    feed = tail + [tree.tokens[n] for n in selected]
    positions = list(range(cached, ctx)) + [ctx - 1 + tree.depths[n] for n in selected]
    row_of = {n: m + j for j, n in enumerate(selected)}  # node -> its row in the forward
    mask = None  # causal is exact for a chain
    if not _is_chain(tree, selected):
        extras = [[] for _ in tail] + [[cached + row_of[a] for a in tree.ancestors(n)[:-1]] for n in selected]
        prefixes = [cached + r for r in range(m)] + [cached + m] * len(selected)
        mask = tree_attention_mask(cached, prefixes, extras, model.dtype, device)
    logits = forward_with_cache(
        model,
        state.target_cache,
        input_ids=torch.tensor([feed], device=device),
        position_ids=torch.tensor([positions], device=device),
        attention_mask=mask,
    ).logits[0, m - 1 :]
    check_finite(logits, "target")

    parent_rows = [row_of.get(tree.parents[n], m - 1) - (m - 1) for n in selected]
    target_probs: list[float] = []
    if selected:
        p1 = torch.softmax(logits.float(), dim=-1)
        tokens = torch.tensor([tree.tokens[n] for n in selected], device=device)
        target_probs = p1[torch.tensor(parent_rows, device=device), tokens].tolist()
    return Scored(logits, row_of, m, parent_rows, target_probs, len(feed))


def trim_target(state: DecodeState, ctx: int, scored: Scored, accepted: list[int]) -> None:
    """Keep the target cache's context plus the accepted nodes' rows."""
    keep_positions(state.target_cache, ctx, [ctx + scored.row_of[n] - scored.pending for n in accepted])
    state.target_cached = ctx + len(accepted)


@torch.no_grad()
def verify(
    model: torch.nn.Module, state: DecodeState, tree: DraftTree, selected: list[int], sampling: SamplingConfig
) -> Verdict:
    """Score ``selected`` nodes with the target in one forward, accept, and trim its cache."""
    ctx = len(state.tokens)
    scored = target_forward(model, state, tree, selected)
    logits, row_of, m = scored.logits, scored.row_of, scored.pending
    children: dict[int, dict[int, int]] = {}
    for n, prow in zip(selected, scored.parent_rows, strict=False):
        children.setdefault(prow, {})[tree.tokens[n]] = n
    if sampling.greedy:
        accepted, final = _walk(children, logits.argmax(dim=-1).tolist(), row_of, m)
    elif selected and _is_chain(tree, selected) and all(tree.q[n] is not None for n in selected):
        accepted, final = _reject_chain(tree, selected, sampling_probs(logits, sampling), state.generator)
    else:
        accepted, final = _walk_sampled(children, logits, sampling, state.generator, row_of, m)
    trim_target(state, ctx, scored, accepted)
    return Verdict(accepted, final, scored.target_probs, scored.tokens_fed)


def _walk(children: dict[int, dict[int, int]], argmax: list[int], row_of: dict[int, int], m: int):
    accepted, row = [], 0
    while (child := children.get(row, {}).get(argmax[row])) is not None:
        accepted.append(child)
        row = row_of[child] - (m - 1)
    return accepted, argmax[row]


def _walk_sampled(children, logits, sampling, generator, row_of, m):
    accepted, row = [], 0
    while True:
        token = sample(sampling_probs(logits[row], sampling), generator)
        child = children.get(row, {}).get(token)
        if child is None:
            return accepted, token
        accepted.append(child)
        row = row_of[child] - (m - 1)


def _reject_chain(tree: DraftTree, selected: list[int], p: torch.Tensor, generator):
    uniforms = torch.rand(len(selected), generator=generator, device=p.device).tolist()
    for j, n in enumerate(selected):
        q, x = tree.q[n], tree.tokens[n]
        if uniforms[j] * float(q[x]) < float(p[j, x]):  # u < p/q without dividing by q
            continue
        residual = (p[j] - q).clamp_(min=0.0)
        total = float(residual.sum())
        return selected[:j], sample(residual / total if total > 0 else p[j], generator)
    return list(selected), sample(p[len(selected)], generator)
