"""Arbitration decision trees: every keep-target / keep-draft branch of an item's decoding, recorded once.

With greedy verification an item's whole arbitrated generation is fixed by its choices at the
mismatches (:mod:`envs.specdec.arbitrate`), so the choices form a binary tree. Recording walks it
depth first from the prompt: at each mismatch the session is cloned (:meth:`ArbitrationSession.clone`,
models shared) and both choices are decoded on to the next mismatch or to the end. Each **node**
keeps what the environment shows and needs there (its observation, the mismatch, the drafted
tokens accepted and the tokens generated so far); each **leaf** keeps the finished generation
(the scorer's value, its text, tokens, cycles, recorded seconds). Replay then serves any policy at
numpy speed, and every node knows its counterfactual values:

- ``follow[n, a]``: the outcome of choice ``a`` at node ``n`` when the target decides every later
  mismatch (the lookahead oracle's signal);
- ``best[n, a]``: the best outcome reachable after choice ``a`` (the exact oracle's), NaN where
  part of that subtree was not recorded.

The keep-target child of a recorded node is always recorded, so ``follow[:, 0]`` is always known.
A keep-draft child is left out when the item's node budget is spent or the path already holds
``max_drafts`` kept draft tokens; it is then ``UNRECORDED`` and a replay decodes it on demand
or refuses it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from envs.specdec.arbitrate import ArbitrationSession, Mismatch
from envs.specdec.errors import SpecGymError
from envs.specdec.files import read_npz, sidecar_pair, write_atomic, write_text_atomic

BRANCH_VERSION = 1
UNRECORDED = -1  # child code of a branch not in the record
LEAF = -2  # child codes <= LEAF are leaves: leaf index = LEAF - code
KEEP_TARGET, KEEP_DRAFT = 0, 1
MISMATCH_INTS = ("index", "block", "draft_token", "target_token")
MISMATCH_FLOATS = (
    "p_draft_of_draft",
    "p_draft_of_target",
    "p_target_of_draft",
    "p_target_of_target",
    "draft_entropy",
    "target_entropy",
    "draft_margin",
    "target_margin",
)
NODE_ARRAYS = ("obs", "mismatch_ints", "mismatch_floats", "accepted", "generated", "kept", "child")
LEAF_ARRAYS = ("score", "tokens", "cycles", "accepted", "time", "kept", "mismatches", "text_bytes", "text_offsets")
ITEM_ARRAYS = ("root", "root_accepted", "complete")
ARRAYS = (
    *(f"node_{a}" for a in NODE_ARRAYS),
    *(f"leaf_{a}" for a in LEAF_ARRAYS),
    *(f"item_{a}" for a in ITEM_ARRAYS),
)

Observe = Callable[[ArbitrationSession, Mismatch], np.ndarray]
Finish = Callable[[ArbitrationSession], tuple[float, str]]


def leaf_code(leaf: int) -> int:
    return LEAF - leaf


def items_digest(questions: Sequence[str]) -> str:
    """A fingerprint of an item list (the questions, in order): a record holds items it was made for."""
    h = hashlib.sha256()
    for q in questions:
        h.update(q.encode("utf-8") + b"\0")
    return h.hexdigest()[:16]


@dataclass
class _ItemBuilder:
    """One item's nodes and leaves while its tree is being walked (local indices)."""

    nodes: dict[str, list] = field(default_factory=lambda: {a: [] for a in NODE_ARRAYS})
    leaves: dict[str, list] = field(default_factory=lambda: {a: [] for a in LEAF_ARRAYS if a != "text_offsets"})

    def place(self, s: ArbitrationSession, m: Mismatch | None, observe: Observe, finish: Finish) -> int:
        """Store where ``s`` stopped (a node at mismatch ``m``, or a leaf when None); its child code."""
        if m is None:
            score, text = finish(s)
            lv = self.leaves
            lv["score"].append(float(score))
            lv["tokens"].append(len(s.new_tokens))
            lv["cycles"].append(s.cycles)
            lv["accepted"].append(s.accepted)
            lv["time"].append(s.time)
            lv["kept"].append(s.draft_kept)
            lv["mismatches"].append(s.mismatches)
            lv["text_bytes"].append(text.encode("utf-8"))
            return leaf_code(len(lv["score"]) - 1)
        nd = self.nodes
        nd["obs"].append(np.asarray(observe(s, m), dtype=np.float32))
        nd["mismatch_ints"].append([getattr(m, a) for a in MISMATCH_INTS])
        nd["mismatch_floats"].append([getattr(m, a) for a in MISMATCH_FLOATS])
        nd["accepted"].append(s.accepted + s.cycle.pos)  # every drafted token now in the output
        nd["generated"].append(len(s.new_tokens))
        nd["kept"].append(s.draft_kept)
        nd["child"].append([UNRECORDED, UNRECORDED])
        return len(nd["obs"]) - 1


@dataclass
class ItemTree:
    """One item's recorded tree: node and leaf arrays with item-local child codes."""

    nodes: dict[str, np.ndarray]
    leaves: dict[str, np.ndarray]
    root: int  # child code of the first stop: node 0, or a leaf when the item has no mismatch
    root_accepted: int  # drafted tokens accepted before the first mismatch's cycle
    complete: bool  # no branch was left out


def record_item(
    session: ArbitrationSession,
    observe: Observe,
    finish: Finish,
    *,
    n_features: int,
    max_nodes: int = 4096,
    max_drafts: int | None = None,
) -> ItemTree:
    """Walk a fresh session's decision tree (see the module docstring); ``finish`` scores a leaf."""
    b = _ItemBuilder()
    m = session.advance()
    root_accepted = session.accepted
    root = b.place(session, m, observe, finish)
    complete = True
    stack = [] if m is None else [(root, session, 0)]
    while stack:  # depth first, so only one pending clone per mismatch on the current path is held
        node, s, drafts = stack.pop()
        children = b.nodes["child"][node]
        if len(b.nodes["obs"]) < max_nodes and (max_drafts is None or drafts < max_drafts):
            other = s.clone()
            other.decide(True)
            m2 = other.advance()
            children[KEEP_DRAFT] = b.place(other, m2, observe, finish)
            if m2 is not None:
                stack.append((children[KEEP_DRAFT], other, drafts + 1))
        else:
            complete = False
        s.decide(False)
        m1 = s.advance()
        children[KEEP_TARGET] = b.place(s, m1, observe, finish)
        if m1 is not None:
            stack.append((children[KEEP_TARGET], s, drafts))  # popped next: keep-target chains first
    nodes = {
        "obs": np.asarray(b.nodes["obs"], dtype=np.float32).reshape(-1, n_features),
        "mismatch_ints": np.asarray(b.nodes["mismatch_ints"], dtype=np.int64).reshape(-1, len(MISMATCH_INTS)),
        "mismatch_floats": np.asarray(b.nodes["mismatch_floats"], dtype=np.float64).reshape(-1, len(MISMATCH_FLOATS)),
        "accepted": np.asarray(b.nodes["accepted"], dtype=np.int32),
        "generated": np.asarray(b.nodes["generated"], dtype=np.int32),
        "kept": np.asarray(b.nodes["kept"], dtype=np.int32),
        "child": np.asarray(b.nodes["child"], dtype=np.int64).reshape(-1, 2),
    }
    texts = b.leaves.pop("text_bytes")
    leaves = {a: np.asarray(v) for a, v in b.leaves.items()}
    leaves["score"] = leaves["score"].astype(np.float64)
    leaves["time"] = leaves["time"].astype(np.float64)
    leaves["text_bytes"] = np.frombuffer(b"".join(texts), dtype=np.uint8)
    leaves["text_offsets"] = np.cumsum([0, *map(len, texts)], dtype=np.int64)
    return ItemTree(nodes, leaves, root, root_accepted, complete)


def _shift(codes: np.ndarray, node_base: int, leaf_base: int) -> np.ndarray:
    """Item-local child codes made global: nodes move up by ``node_base``, leaves by ``leaf_base``."""
    out = codes.copy()
    out[codes >= 0] += node_base
    out[codes <= LEAF] -= leaf_base
    return out


@dataclass
class BranchTree:
    """Recorded decision trees of a list of items, concatenated (global node and leaf indices).

    ``meta`` names what the record holds (pair, task, split, k, max_new_tokens, the items'
    fingerprint, the observation's length) so a replay can refuse a record of something else.
    """

    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]
    _values: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def from_items(cls, meta: dict[str, Any], items: Sequence[ItemTree]) -> BranchTree:
        """Concatenate per-item trees (in item order) into one record."""
        parts: dict[str, list[np.ndarray]] = {a: [] for a in ARRAYS if a != "leaf_text_offsets"}
        text_lengths: list[np.ndarray] = []
        n_nodes = n_leaves = 0
        for it in items:
            for a in NODE_ARRAYS:
                value = it.nodes[a]
                parts[f"node_{a}"].append(_shift(value, n_nodes, n_leaves) if a == "child" else value)
            for a in LEAF_ARRAYS:
                if a != "text_offsets":
                    parts[f"leaf_{a}"].append(it.leaves[a])
            text_lengths.append(np.diff(it.leaves["text_offsets"]))
            root = _shift(np.array([it.root]), n_nodes, n_leaves)
            parts["item_root"].append(root)
            parts["item_root_accepted"].append(np.array([it.root_accepted], dtype=np.int32))
            parts["item_complete"].append(np.array([it.complete]))
            n_nodes += len(it.nodes["obs"])
            n_leaves += len(it.leaves["score"])
        arrays = {a: np.concatenate(v) if v else np.zeros(0) for a, v in parts.items()}
        arrays["leaf_text_offsets"] = np.cumsum([0, *np.concatenate(text_lengths)], dtype=np.int64)
        n_features = int(meta["n_features"])
        arrays["node_obs"] = arrays["node_obs"].astype(np.float32).reshape(-1, n_features)
        for a in ("node_child", "node_mismatch_ints", "node_mismatch_floats"):
            width = 2 if a == "node_child" else len(MISMATCH_INTS if a.endswith("ints") else MISMATCH_FLOATS)
            arrays[a] = arrays[a].reshape(-1, width)
        arrays["node_child"] = arrays["node_child"].astype(np.int64)
        arrays["item_root"] = arrays["item_root"].astype(np.int64)
        arrays["item_complete"] = arrays["item_complete"].astype(bool)
        return cls(dict(meta, n_items=len(items)), arrays)

    @classmethod
    def concat(cls, trees: Sequence[BranchTree]) -> BranchTree:
        """Records of consecutive item ranges joined into one (the first one's meta)."""
        if not trees:
            raise SpecGymError("no branch records to join")
        parts: dict[str, list[np.ndarray]] = {a: [] for a in ARRAYS}
        n_nodes = n_leaves = n_text = 0
        for t in trees:
            for a in ARRAYS:
                v = t.arrays[a]
                if a in ("node_child", "item_root"):
                    v = _shift(v, n_nodes, n_leaves)
                elif a == "leaf_text_offsets":
                    v = (v[1:] if parts[a] else v) + n_text
                parts[a].append(v)
            n_nodes, n_leaves = n_nodes + t.n_nodes, n_leaves + len(t.arrays["leaf_score"])
            n_text += len(t.arrays["leaf_text_bytes"])
        arrays = {a: np.concatenate(v) for a, v in parts.items()}
        return cls(dict(trees[0].meta, n_items=len(arrays["item_root"])), arrays)

    # -- reading -------------------------------------------------------------------------
    @property
    def n_items(self) -> int:
        return len(self.arrays["item_root"])

    @property
    def n_nodes(self) -> int:
        return len(self.arrays["node_obs"])

    def __getattr__(self, name: str) -> np.ndarray:
        arrays = self.__dict__.get("arrays", {})
        if name in arrays:
            return arrays[name]
        raise AttributeError(name)

    def mismatch(self, node: int) -> Mismatch:
        ints, floats = self.arrays["node_mismatch_ints"][node], self.arrays["node_mismatch_floats"][node]
        return Mismatch(
            **{a: int(v) for a, v in zip(MISMATCH_INTS, ints, strict=True)},
            **{a: float(v) for a, v in zip(MISMATCH_FLOATS, floats, strict=True)},
        )

    def text(self, leaf: int) -> str:
        off = self.arrays["leaf_text_offsets"]
        return self.arrays["leaf_text_bytes"][off[leaf] : off[leaf + 1]].tobytes().decode("utf-8")

    def _value(self, kind: str) -> np.ndarray:
        """``follow`` or ``best`` as [n_nodes, 2] (see the module docstring); computed once."""
        if kind not in self._values:
            child, score = self.arrays["node_child"], self.arrays["leaf_score"]
            out = np.full(child.shape, np.nan)
            # children come after their parent within an item, so one backward sweep suffices
            for n in range(len(child) - 1, -1, -1):
                for a in (0, 1):
                    c = child[n, a]
                    if c <= LEAF:
                        out[n, a] = score[LEAF - c]
                    elif c >= 0:
                        out[n, a] = out[c, 0] if kind == "follow" else np.max(out[c])
            self._values[kind] = out
        return self._values[kind]

    @property
    def follow(self) -> np.ndarray:
        return self._value("follow")

    @property
    def best(self) -> np.ndarray:
        return self._value("best")

    def root_value(self, item: int, kind: str) -> float:
        """The item's target-only outcome (``follow``) or its best reachable one (``best``)."""
        root = int(self.arrays["item_root"][item])
        if root <= LEAF:
            return float(self.arrays["leaf_score"][LEAF - root])
        v = self._value(kind)[root]
        return float(v[0] if kind == "follow" else np.max(v))

    # -- growing on demand -------------------------------------------------------------------
    def copy(self) -> BranchTree:
        return BranchTree(dict(self.meta), {a: v.copy() for a, v in self.arrays.items()})

    def graft(self, node: int, action: int, sub: ItemTree) -> int:
        """Attach ``sub`` (recorded from ``node``'s choice ``action``) in memory; the new child code.

        Each graft copies the arrays (``np.concatenate``): fine for the rare branch a record lacks,
        not for growing a record from nothing (record it instead)."""
        base_n, base_l = self.n_nodes, len(self.arrays["leaf_score"])
        a = self.arrays
        for name in NODE_ARRAYS:
            value = sub.nodes[name]
            value = _shift(value, base_n, base_l) if name == "child" else value
            a[f"node_{name}"] = np.concatenate([a[f"node_{name}"], value])
        for name in LEAF_ARRAYS:
            if name == "text_offsets":
                a["leaf_text_offsets"] = np.concatenate(
                    [a["leaf_text_offsets"], a["leaf_text_offsets"][-1] + sub.leaves["text_offsets"][1:]]
                )
            else:
                a[f"leaf_{name}"] = np.concatenate([a[f"leaf_{name}"], sub.leaves[name]])
        code = int(_shift(np.array([sub.root]), base_n, base_l)[0])
        a["node_child"][node, action] = code
        self._values.clear()
        return code

    # -- files ---------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Compressed ``.npz`` (meta inside) plus a readable ``.json`` of the meta; written atomically."""
        path = Path(path)
        if path.suffix != ".npz":
            raise SpecGymError(f"branch record path {str(path)!r} must end in .npz")
        meta = dict(self.meta, version=BRANCH_VERSION)
        path.unlink(missing_ok=True)
        write_text_atomic(path.with_suffix(".json"), json.dumps(meta, indent=1))
        return write_atomic(path, lambda f: np.savez_compressed(f, meta=np.array(json.dumps(meta)), **self.arrays))

    @classmethod
    def load(cls, path: str | Path) -> BranchTree:
        path = Path(path)
        remedy = f"python -m experiments.record_traces --env arbitration --pair {sidecar_pair(path)} --out {path}"
        meta, arrays = read_npz(path, ARRAYS, kind="branch record", version=BRANCH_VERSION, remedy=remedy)
        tree = cls(meta, arrays)
        tree._check(path, remedy)
        return tree

    def _check(self, path: Path, remedy: str) -> None:
        """Shapes and child codes consistent, so a damaged record fails here and not mid-training."""
        a, n, m = self.arrays, self.n_nodes, len(self.arrays["leaf_score"])
        child = a["node_child"]
        problems = []
        if a["node_obs"].ndim != 2 or a["node_obs"].shape[1] != self.meta.get("n_features"):
            problems.append("observations of the wrong width")
        if child.shape != (n, 2) or any(len(a[f"node_{x}"]) != n for x in NODE_ARRAYS):
            problems.append("node arrays of different lengths")
        if any(len(a[f"leaf_{x}"]) != m for x in LEAF_ARRAYS if x not in ("text_bytes", "text_offsets")):
            problems.append("leaf arrays of different lengths")
        codes = np.concatenate([child.ravel(), a["item_root"]])
        if len(codes) and (codes.max() >= n or (LEAF - codes[codes <= LEAF]).max(initial=-1) >= m):
            problems.append("child codes outside the record")
        if len(a["leaf_text_offsets"]) != m + 1 or a["leaf_text_offsets"][-1] != len(a["leaf_text_bytes"]):
            problems.append("text offsets that do not match the text")
        if problems:
            raise SpecGymError(f"branch record {str(path)!r} is damaged ({problems[0]}); re-record it with {remedy}")
