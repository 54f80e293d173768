"""Arbitration decision-makers behind one interface: rules, random, the oracle, saved SB3 policies.

An :class:`Arbiter` is asked at each draft/target mismatch whether to keep the draft's token,
given the env's observation (layout in ``envs.arbitration.ArbitrationEnv``'s docstring) and the mismatch itself.
Names (what ``make_arbiter`` and evaluation accept):

- ``target-only``: always the target's token: lossless SpD, the target's greedy answer.
- ``always-draft``: always the draft's token.
- ``random`` / ``random-P``: the draft's token with probability P (default 0.5), seeded.
- ``target-prob-T``: the draft's token when the target's own probability of it is >= T
  (the target nearly agrees; CoSpec's "plausible under the target" rule).
- ``draft-margin-D``: the draft's token when the draft is more confident in its token than
  the target in its own, by at least D: P_draft(draft token) - P_target(target token) >= D.
- ``entropy-gate-H``: the draft's token when the target is unsure: its entropy, over
  ln(vocabulary), is >= H (in the spirit of FLy, 2025: training-free, the target's own entropy).
- ``judge:PATH.json[@P]``: a logistic-regression judge on the env's observation (in the spirit
  of Judge Decoding and Pivot-Aware SD), fitted to the lookahead oracle's choices on training
  items (:func:`fit_judge`); the draft's token when its probability is >= P (default: the file's).
- ``oracle``: one-step lookahead on the answer: continue both choices with the target's
  greedy decoding to the end, keep the draft's token when only that branch is scored better.
  On a branch record it reads ``follow`` (exact, free); live it decodes both branches.
- ``exact-oracle``: on a branch record, the choice whose subtree holds the best reachable answer.
- ``PATH.zip``: a saved SB3 ``PPO`` policy trained on Arbitration.

Live, an arbiter sees ``keep_draft(obs, mismatch)``; on a branch record (``backend='replay'``)
:func:`run_replay_item` asks ``keep_draft_at(env, node)``, which defaults to the same call on
the recorded observation and mismatch.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from envs.specdec.arbitrate import ArbitrationSession, Mismatch
from envs.specdec.branches import LEAF
from envs.specdec.errors import SpecGymError
from envs.specdec.files import write_text_atomic
from envs.specdec.records import mean_accepted_length

ARBITERS = (
    "target-only",
    "always-draft",
    "random[-P]",
    "target-prob-T",
    "draft-margin-D",
    "entropy-gate-H",
    "judge:PATH.json[@P]",
    "oracle",
    "exact-oracle",
    "PATH.zip",
)
TARGET_ENTROPY = 5  # index of the target's entropy / ln(vocabulary) in the observation


class Arbiter:
    """Keeps the target's token unless a subclass says otherwise."""

    name = "arbiter"

    def reset(self, env, session: ArbitrationSession, index: int) -> None:
        """A new item starts (``env`` is the unwrapped ArbitrationEnv decoding it)."""

    def keep_draft(self, obs: np.ndarray, mismatch: Mismatch) -> bool:
        return False

    def start_item(self, env, index: int) -> None:
        """Replay: item ``index`` of ``env`` (a replay ArbitrationEnv) starts."""

    def keep_draft_at(self, env, node: int) -> bool:
        """Replay: the choice at recorded ``node``."""
        tree = env.tree
        return self.keep_draft(tree.node_obs[node], tree.mismatch(node))


class TargetOnly(Arbiter):
    name = "target-only"


class AlwaysDraft(Arbiter):
    name = "always-draft"

    def keep_draft(self, obs: np.ndarray, mismatch: Mismatch) -> bool:
        return True


class RandomArbiter(Arbiter):
    def __init__(self, p: float = 0.5, seed: int = 0):
        if not 0.0 <= p <= 1.0:
            raise SpecGymError(f"random arbiter probability must be in [0, 1], got {p}")
        self.p, self.rng, self.name = p, np.random.default_rng(seed), "random" if p == 0.5 else f"random-{p:g}"

    def keep_draft(self, obs: np.ndarray, mismatch: Mismatch) -> bool:
        return bool(self.rng.random() < self.p)


class TargetProbRule(Arbiter):
    def __init__(self, tau: float):
        self.tau, self.name = tau, f"target-prob-{tau:g}"

    def keep_draft(self, obs: np.ndarray, mismatch: Mismatch) -> bool:
        return mismatch.p_target_of_draft >= self.tau


class DraftMarginRule(Arbiter):
    def __init__(self, delta: float):
        self.delta, self.name = delta, f"draft-margin-{delta:g}"

    def keep_draft(self, obs: np.ndarray, mismatch: Mismatch) -> bool:
        return mismatch.p_draft_of_draft - mismatch.p_target_of_target >= self.delta


class EntropyGate(Arbiter):
    def __init__(self, h: float):
        self.h, self.name = h, f"entropy-gate-{h:g}"

    def keep_draft(self, obs: np.ndarray, mismatch: Mismatch) -> bool:
        return bool(obs[TARGET_ENTROPY] >= self.h)


class JudgeArbiter(Arbiter):
    """Logistic regression on the observation: P(the draft's token is the better choice)."""

    def __init__(self, path: str | Path, threshold: float | None = None):
        path = Path(path)
        try:
            saved = json.loads(path.read_text())
            self.w = np.asarray(saved["weights"], dtype=np.float64)
            self.b = float(saved["bias"])
            self.threshold = float(saved["threshold"] if threshold is None else threshold)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SpecGymError(
                f"cannot read judge {str(path)!r} ({type(exc).__name__}); fit one with fit_judge"
            ) from None
        self.name = f"judge@{self.threshold:g}"

    def prob(self, obs: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(np.asarray(obs, dtype=np.float64) @ self.w + self.b)))

    def keep_draft(self, obs: np.ndarray, mismatch: Mismatch) -> bool:
        if obs.shape[-1] != len(self.w):
            raise SpecGymError(f"judge expects {len(self.w)} features, the observation has {obs.shape[-1]}")
        return bool(self.prob(obs) >= self.threshold)


def oracle_labels(tree) -> tuple[np.ndarray, np.ndarray]:
    """Recorded nodes where both choices' lookahead outcomes are known, and whether the draft's is better."""
    follow = tree.follow
    known = ~np.isnan(follow).any(axis=1)
    return np.flatnonzero(known), follow[known, 1] > follow[known, 0]


def decisive_on_target_path(tree, n_items: int) -> dict[str, int]:
    """The mismatches target-only decoding meets on the first ``n_items`` (each item's keep-target
    path), by what keeping the draft's token there instead, then the target's greedy decoding, does
    to the answer: how rare and how one-sided the decisions that matter are (a rule or policy can
    win only where ``draft_better`` outweighs ``draft_worse`` among the mismatches it fires on)."""
    follow, child = tree.follow, tree.node_child
    counts = {"mismatches": 0, "draft_better": 0, "draft_worse": 0, "unknown": 0, "items_with_draft_better": 0}
    for root in tree.item_root[:n_items]:
        node, better = int(root), False
        while node >= 0:
            keep_target, keep_draft = follow[node]
            counts["mismatches"] += 1
            if np.isnan(keep_target) or np.isnan(keep_draft):
                counts["unknown"] += 1
            elif keep_draft != keep_target:
                gain = keep_draft > keep_target
                counts["draft_better" if gain else "draft_worse"] += 1
                better = better or gain
            node = int(child[node, 0])
        counts["items_with_draft_better"] += int(better)
    return counts


def fit_judge(tree, out: str | Path, threshold: float = 0.5, l2: float = 1e-3, seed: int = 0) -> Path:
    """Fit the judge to the lookahead oracle's choices at every recorded node of a training record.

    The classes are weighted to balance (the draft's token is the better choice at a few percent
    of mismatches), so probabilities centre on 0.5 and thresholds are comparable across pairs.

    Written by hand in a few lines of torch (full-batch L-BFGS on the logistic loss): the
    project's dependencies have no logistic regression, and this one needs nothing more.
    """
    import torch

    nodes, labels = oracle_labels(tree)
    x = torch.as_tensor(tree.node_obs[nodes], dtype=torch.float64)
    y = torch.as_tensor(labels, dtype=torch.float64)
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    if 0 < labels.sum() < len(labels):
        torch.manual_seed(seed)
        opt = torch.optim.LBFGS([w, b], max_iter=500, line_search_fn="strong_wolfe")
        pos_weight = (len(y) - y.sum()) / y.sum()

        def loss():
            opt.zero_grad()
            logits = x @ w + b
            value = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, pos_weight=pos_weight)
            value = value + l2 * (w * w).sum()
            value.backward()
            return value

        opt.step(loss)
    else:  # one class only (a pair that never answers right): the judge is that constant choice
        with torch.no_grad():
            b.fill_(30.0 if labels.all() and len(labels) else -30.0)
    saved = {
        "weights": w.detach().tolist(),
        "bias": float(b.detach()),
        "threshold": threshold,
        "fitted_on": {key: tree.meta.get(key) for key in ("pair", "task", "split", "n_items", "k", "max_new_tokens")},
        "nodes": len(nodes),
        "positives": int(labels.sum()),
    }
    return write_text_atomic(out, json.dumps(saved, indent=1))


class OracleArbiter(Arbiter):
    """One-step lookahead on correctness (see the module docstring)."""

    name = "oracle"

    def keep_draft_at(self, env, node: int) -> bool:
        follow = env.tree.follow[node]
        return bool(follow[1] > follow[0])

    def reset(self, env, session: ArbitrationSession, index: int) -> None:
        self.env, self.session, self.index = env, session, index

    def _branch(self, prefix: list[int]) -> float:
        """Correctness of ``prefix`` continued by the target's greedy decoding to the end."""
        from envs.tasks.math import score

        env, state = self.env, self.session.state
        left = state.max_len - len(prefix)
        ended = prefix[-1] in env.decoder.eos or left <= 0
        tail = [] if ended else env.decoder.generate_target(prefix, left).tokens
        text = env.pair.tokenizer.decode(prefix[state.prompt_len :] + tail, skip_special_tokens=True)
        return score(env.items[self.index], text)

    def keep_draft(self, obs: np.ndarray, mismatch: Mismatch) -> bool:
        cycle = self.session.cycle  # the output so far plus the accepted part of this block
        prefix = self.session.state.tokens + cycle.tokens[: cycle.pos]
        draft = self._branch(prefix + [mismatch.draft_token])
        return draft > self._branch(prefix + [mismatch.target_token])


class ExactOracle(Arbiter):
    """On a branch record: the choice leading to the best reachable answer (ties: the target's)."""

    name = "exact-oracle"

    def keep_draft_at(self, env, node: int) -> bool:
        best = env.tree.best[node]
        return bool(best[1] > best[0])

    def keep_draft(self, obs: np.ndarray, mismatch: Mismatch) -> bool:
        raise SpecGymError("exact-oracle needs a branch record: evaluate with backend='replay'")


class SB3Arbiter(Arbiter):
    """A saved Stable-Baselines3 ``PPO`` policy acting on the env's observation."""

    def __init__(self, path: str | Path):
        from envs.partners import load_sb3

        path = Path(path)
        if not path.is_file():
            raise SpecGymError(f"saved policy {str(path)!r} not found; pass the .zip a training run saved")
        self.model, _ = load_sb3(path)
        self.name = f"sb3:{path.name}"

    def keep_draft(self, obs: np.ndarray, mismatch: Mismatch) -> bool:
        if obs.shape != self.model.observation_space.shape:
            raise SpecGymError(
                f"saved policy expects observations of shape {self.model.observation_space.shape}, "
                f"Arbitration gives {obs.shape}: was it trained on another env?"
            )
        action, _ = self.model.predict(obs, deterministic=True)
        return int(np.asarray(action).item()) == 1


_PATTERNS = (
    (re.compile(r"random(?:-([\d.]+))?"), lambda m, seed: RandomArbiter(float(m.group(1) or 0.5), seed)),
    (re.compile(r"target-prob-([\d.]+)"), lambda m, seed: TargetProbRule(float(m.group(1)))),
    (re.compile(r"draft-margin-(-?[\d.]+)"), lambda m, seed: DraftMarginRule(float(m.group(1)))),
    (re.compile(r"entropy-gate-([\d.]+)"), lambda m, seed: EntropyGate(float(m.group(1)))),
    (re.compile(r"judge:(.+?\.json)(?:@([\d.]+))?"), lambda m, seed: JudgeArbiter(m.group(1), _opt(m.group(2)))),
)


def _opt(text: str | None) -> float | None:
    return None if text is None else float(text)


def make_arbiter(name: str, seed: int = 0) -> Arbiter:
    """An arbiter by name (see the module docstring) or a saved ``.zip`` policy."""
    if name.endswith(".zip"):
        return SB3Arbiter(name)
    simple = {
        "target-only": TargetOnly,
        "always-draft": AlwaysDraft,
        "oracle": OracleArbiter,
        "exact-oracle": ExactOracle,
    }
    if name in simple:
        return simple[name]()
    for pattern, build in _PATTERNS:
        if m := pattern.fullmatch(name):
            return build(m, seed)
    raise SpecGymError(f"unknown arbiter {name!r}; choose one of {', '.join(ARBITERS)}")


@dataclass
class ItemResult:
    """One item decoded under an arbiter (times measured, drafting + verification)."""

    index: int
    score: float  # the task scorer's value (the env's reward; partial credit possible)
    correct: bool  # full marks
    tokens: int
    cycles: int
    mismatches: int
    draft_kept: int
    time: float
    agree: int = 0  # replay: decisions equal to the lookahead oracle's
    decisive: int = 0  # replay: decisions where the two choices' lookahead outcomes differ
    agree_decisive: int = 0

    @property
    def mean_accepted_length(self) -> float:
        return mean_accepted_length(self.tokens, self.cycles)


def run_item(env, arbiter: Arbiter, index: int) -> ItemResult:
    """Decode item ``index`` of an (unwrapped) ArbitrationEnv with ``arbiter`` at every mismatch."""
    session = env.new_session(index)
    arbiter.reset(env, session, index)
    while (m := session.advance()) is not None:
        session.decide(arbiter.keep_draft(env.observe(session, m), m))
    value = env.correctness(index, session)
    return ItemResult(
        index=index,
        score=value,
        correct=value >= 1.0,
        tokens=len(session.new_tokens),
        cycles=session.cycles,
        mismatches=session.mismatches,
        draft_kept=session.draft_kept,
        time=session.time,
    )


def run_replay_item(env, arbiter: Arbiter, index: int) -> ItemResult:
    """Walk item ``index`` of a replay ArbitrationEnv's branch record with ``arbiter``; branches the
    record lacks are served as the env's ``unrecorded`` says (:meth:`ArbitrationEnv.serve_choice`)."""
    tree = env.tree
    arbiter.start_item(env, index)
    code, path = int(tree.item_root[index]), []
    agree = decisive = agree_decisive = 0
    while code >= 0:
        keep, nxt = env.serve_choice(index, path, code, int(arbiter.keep_draft_at(env, code)))
        tree = env.tree  # the env's own copy where a branch was grafted
        follow = tree.follow[code]
        oracle = int(follow[1] > follow[0])
        split = bool(follow[1] != follow[0])
        agree += keep == oracle
        decisive += split
        agree_decisive += split and keep == oracle
        path.append(keep)
        code = nxt
    leaf = LEAF - code
    value = float(tree.leaf_score[leaf])
    return ItemResult(
        index=index,
        score=value,
        correct=value >= 1.0,
        tokens=int(tree.leaf_tokens[leaf]),
        cycles=int(tree.leaf_cycles[leaf]),
        mismatches=int(tree.leaf_mismatches[leaf]),
        draft_kept=int(tree.leaf_kept[leaf]),
        time=float(tree.leaf_time[leaf]),
        agree=agree,
        decisive=decisive,
        agree_decisive=agree_decisive,
    )
