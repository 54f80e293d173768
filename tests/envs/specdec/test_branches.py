"""Arbitration decision trees (envs.specdec.branches): every recorded node and leaf is what live
decoding reaches by the same choices; counterfactual values; joining, saving, damage, grafting."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np
import pytest

from envs.specdec import SpecGymError, SpeculativeDecoder
from envs.specdec.arbitrate import ArbitrationSession
from envs.specdec.branches import (
    ARRAYS,
    BRANCH_VERSION,
    KEEP_DRAFT,
    KEEP_TARGET,
    LEAF,
    UNRECORDED,
    BranchTree,
    ItemTree,
    record_item,
)
from envs.tasks.math import load_items, prompt_text
from envs.tasks.splits import split_seed

N_FEATURES = 5
META = {"pair": "test", "n_features": N_FEATURES}


@dataclass
class Setup:
    """A pair, its prompts and decoding settings, with a toy observation and a toy scorer."""

    decoder: SpeculativeDecoder
    prompts: list[list[int]]
    max_new: int
    k: int

    def session(self, item: int, max_new: int | None = None) -> ArbitrationSession:
        return ArbitrationSession(self.decoder, self.prompts[item], max_new or self.max_new, self.k)

    def observe(self, s: ArbitrationSession, m) -> np.ndarray:
        return np.array(
            [m.p_draft_of_draft, m.p_target_of_target, len(s.new_tokens) / self.max_new, s.mismatches, s.draft_kept],
            dtype=np.float32,
        )

    @staticmethod
    def finish(s: ArbitrationSession) -> tuple[float, str]:
        """A score that differs between leaves (so best and follow differ), and the tokens as text."""
        tokens = s.new_tokens
        return sum((i + 1) * t for i, t in enumerate(tokens)) % 5 / 4, " ".join(map(str, tokens)) + " é"

    def record(self, item: int, max_nodes: int = 100_000, **kwargs) -> ItemTree:
        return record_item(
            self.session(item, kwargs.pop("max_new", None)),
            self.observe,
            self.finish,
            n_features=N_FEATURES,
            max_nodes=max_nodes,
            **kwargs,
        )

    def tree(self, **kwargs) -> BranchTree:
        return BranchTree.from_items(META, [self.record(i, **kwargs) for i in range(len(self.prompts))])

    def follow_path(self, item: int, path: list[int]) -> tuple[ArbitrationSession, object]:
        """A fresh session of ``item`` decided by ``path``, and where it stops (a mismatch, or None)."""
        s = self.session(item)
        m = s.advance()
        for choice in path:
            s.decide(choice == KEEP_DRAFT)
            m = s.advance()
        return s, m


@pytest.fixture(scope="module", params=["tiny-random", "gsm"])
def setup(request, text_pair, gsm_pair) -> Setup:
    if request.param == "gsm":
        items = load_items("chain_sum", 4, split_seed("train"))  # item 2 has no mismatch at k=4
        prompts = [gsm_pair.encode(prompt_text(x.question), chat=False) for x in items]
        return Setup(SpeculativeDecoder(gsm_pair), prompts, 64, 4)
    texts = ["The cat sat on the mat.", "2 + 2 =", "Once upon a time"]
    return Setup(SpeculativeDecoder(text_pair), [text_pair.encode(t) for t in texts], 12, 3)


@pytest.fixture(scope="module")
def full(setup) -> BranchTree:
    tree = setup.tree()
    assert tree.item_complete.all()
    return tree


def stops(tree: BranchTree, item: int) -> dict[int, list[int]]:
    """Every recorded child code of ``item`` (nodes >= 0, leaves <= LEAF) and the choices reaching it."""
    root = int(tree.item_root[item])
    found, todo = {root: []}, [root]
    while todo:
        code = todo.pop()
        if code < 0:
            continue
        for a in (KEEP_TARGET, KEEP_DRAFT):
            c = int(tree.node_child[code, a])
            if c != UNRECORDED:
                found[c] = [*found[code], a]
                todo.append(c)
    return found


def node_at(tree: BranchTree, item: int, path: list[int]) -> int:
    code = int(tree.item_root[item])
    for a in path:
        code = int(tree.node_child[code, a])
    return code


def test_every_node_and_leaf_is_what_live_decoding_reaches(setup, full):
    seen_nodes = seen_leaves = 0
    for item in range(full.n_items):
        for code, path in stops(full, item).items():
            s, m = setup.follow_path(item, path)
            if code >= 0:
                assert m == full.mismatch(code)
                assert full.node_obs[code].tobytes() == setup.observe(s, m).tobytes()
                assert full.node_generated[code] == len(s.new_tokens)
                assert full.node_accepted[code] == s.accepted + s.cycle.pos
                assert full.node_kept[code] == s.draft_kept == sum(path)
                seen_nodes += 1
            else:
                leaf = LEAF - code
                assert m is None
                assert (full.leaf_score[leaf], full.text(leaf)) == setup.finish(s)
                assert full.leaf_tokens[leaf] == len(s.new_tokens) and full.leaf_cycles[leaf] == s.cycles
                assert full.leaf_accepted[leaf] == s.accepted and full.leaf_kept[leaf] == s.draft_kept
                assert full.leaf_mismatches[leaf] == s.mismatches == len(path)  # one decision per mismatch
                seen_leaves += 1
    assert seen_nodes == full.n_nodes and seen_leaves == len(full.leaf_score)  # every one reached from a root
    assert full.n_nodes >= 2 and seen_leaves > full.n_items  # branching trees, not just chains


def test_follow_is_the_target_only_continuation(setup, full):
    follow = full.follow
    checked = 0
    for item in range(full.n_items):
        for code, path in stops(full, item).items():
            if code < 0:
                continue
            # by the arrays: keep the target from the child on, down to a leaf
            for a in (KEEP_TARGET, KEEP_DRAFT):
                c = int(full.node_child[code, a])
                while c >= 0:
                    c = int(full.node_child[c, KEEP_TARGET])
                assert follow[code, a] == full.leaf_score[LEAF - c]
            # by live decoding, for a few nodes per item
            if checked < 12 * (item + 1):
                for a in (KEEP_TARGET, KEEP_DRAFT):
                    s, _ = setup.follow_path(item, [*path, a])
                    s.run(lambda m: False)
                    assert follow[code, a] == setup.finish(s)[0]
                checked += 1
    assert checked


def test_root_value_follow_is_the_target_only_decoding(setup, full):
    for item in range(full.n_items):
        s = setup.session(item)
        s.run(lambda m: False)
        assert s.new_tokens == setup.decoder.generate_target(setup.prompts[item], setup.max_new).tokens
        assert full.root_value(item, "follow") == setup.finish(s)[0]
        assert full.root_value(item, "best") >= full.root_value(item, "follow")


def test_best_is_the_best_leaf_below_and_never_below_follow(full):
    best, follow = full.best, full.follow
    for item in range(full.n_items):
        found = stops(full, item)
        for code, path in found.items():
            if code < 0:
                continue
            for a in (KEEP_TARGET, KEEP_DRAFT):
                below = [c for c, p in found.items() if c <= LEAF and p[: len(path) + 1] == [*path, a]]
                assert best[code, a] == max(full.leaf_score[LEAF - c] for c in below)
        root = int(full.item_root[item])
        assert full.root_value(item, "best") == max(full.leaf_score[LEAF - c] for c in found if c <= LEAF)
        if root <= LEAF:
            assert full.root_value(item, "best") == full.root_value(item, "follow") == full.leaf_score[LEAF - root]
    assert (best >= follow).all()
    assert (best > follow).any()  # the toy scorer makes some keep-draft subtree better than following the target


def test_a_node_budget_leaves_draft_branches_out(setup, full):
    cut = setup.tree(max_nodes=2)
    assert not cut.item_complete.all() and (cut.node_child[:, KEEP_DRAFT] == UNRECORDED).any()
    assert (cut.node_child[:, KEEP_TARGET] != UNRECORDED).all()  # keep-target chains always complete
    for item in range(cut.n_items):
        assert cut.root_value(item, "follow") == full.root_value(item, "follow")
    assert not np.isnan(cut.follow[:, KEEP_TARGET]).any()
    unrecorded = cut.node_child == UNRECORDED
    assert np.isnan(cut.follow[unrecorded]).all() and np.isnan(cut.best[unrecorded]).all()
    # max_drafts=0: only the target-only chain, one node per mismatch of target-only decoding
    chain = setup.tree(max_drafts=0)
    assert (chain.node_child[:, KEEP_DRAFT] == UNRECORDED).all() and len(chain.leaf_score) == chain.n_items
    for item in range(chain.n_items):
        s = setup.session(item)
        s.run(lambda m: False)
        assert len(stops(chain, item)) - 1 == s.mismatches


def items_with_a_leaf_root(setup) -> list[ItemTree]:
    """The setup's items, plus one decoded to a single token (no mismatch: its root is a leaf)."""
    items = [setup.record(i, max_nodes=8) for i in range(len(setup.prompts))]
    short = setup.record(0, max_new=1)
    assert short.root <= LEAF and len(short.nodes["obs"]) == 0
    return [items[0], short, *items[1:], short]


def assert_same_arrays(a: BranchTree, b: BranchTree) -> None:
    assert set(a.arrays) == set(b.arrays) == set(ARRAYS)
    for name in ARRAYS:
        x, y = a.arrays[name], b.arrays[name]
        assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y), name


def test_concat_of_chunks_equals_from_items_of_all(setup, tmp_path):
    items = items_with_a_leaf_root(setup)
    whole = BranchTree.from_items(META, items)
    for cuts in ([2], [1, 3], [1, 2, 3, 4]):
        bounds = [0, *cuts, len(items)]
        chunks = [BranchTree.from_items(META, items[s:e]) for s, e in zip(bounds, bounds[1:], strict=False)]
        joined = BranchTree.concat(chunks)
        assert_same_arrays(joined, whole)
        assert joined.meta == whole.meta and joined.n_items == len(items)
        # and through files, as a resumed recording joins them
        loaded = [BranchTree.load(c.save(tmp_path / f"{len(cuts)}_{i}.npz")) for i, c in enumerate(chunks)]
        assert_same_arrays(BranchTree.concat(loaded), whole)
    for i in range(len(items)):
        assert whole.root_value(i, "follow") == BranchTree.from_items(META, [items[i]]).root_value(0, "follow")
    with pytest.raises(SpecGymError, match="no branch records to join"):
        BranchTree.concat([])


def test_save_load_round_trip(setup, full, tmp_path):
    path = full.save(tmp_path / "tree.npz")
    again = BranchTree.load(path)
    assert_same_arrays(again, full)
    assert again.meta == {**full.meta, "version": BRANCH_VERSION}
    assert json.loads(path.with_suffix(".json").read_text()) == again.meta
    assert np.array_equal(again.follow, full.follow) and np.array_equal(again.best, full.best)
    assert [again.text(i) for i in range(len(again.leaf_score))] == [full.text(i) for i in range(len(full.leaf_score))]
    with pytest.raises(SpecGymError, match="must end in .npz"):
        full.save(tmp_path / "tree.bin")


def _damage(how: str):
    def edit(arrays: dict, meta: dict) -> None:
        if how == "child":
            arrays["node_child"] = arrays["node_child"].copy()
            arrays["node_child"][-1, KEEP_TARGET] = len(arrays["node_obs"])  # one past the last node
        elif how == "leaf":
            arrays["item_root"] = arrays["item_root"].copy()
            arrays["item_root"][-1] = LEAF - len(arrays["leaf_score"])
        elif how == "width":
            arrays["node_obs"] = arrays["node_obs"][:, :-1]
        elif how == "lengths":
            arrays["node_kept"] = arrays["node_kept"][:-1]
        elif how == "text":
            arrays["leaf_text_bytes"] = arrays["leaf_text_bytes"][:-1]
        elif how == "missing":
            del arrays["leaf_score"]
        elif how == "version":
            meta["version"] = BRANCH_VERSION + 1

    return edit


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("child", "damaged \\(child codes outside the record\\)"),
        ("leaf", "damaged \\(child codes outside the record\\)"),
        ("width", "damaged \\(observations of the wrong width\\)"),
        ("lengths", "damaged \\(node arrays of different lengths\\)"),
        ("text", "damaged \\(text offsets that do not match the text\\)"),
        ("missing", "no 'leaf_score' array"),
        ("version", f"format version {BRANCH_VERSION + 1}"),
    ],
)
def test_damaged_records_are_refused_naming_the_file(full, tmp_path, how, message):
    path = full.save(tmp_path / "tree.npz")
    arrays, meta = dict(full.arrays), {**full.meta, "version": BRANCH_VERSION}
    _damage(how)(arrays, meta)
    np.savez_compressed(path, meta=np.array(json.dumps(meta)), **arrays)
    expect = re.escape(repr(str(path))) + ".*" + message + ".*record_traces --env arbitration"
    with pytest.raises(SpecGymError, match=expect):
        BranchTree.load(path)


@pytest.mark.parametrize("how", ["truncated", "garbage", "missing"])
def test_unreadable_records_are_refused_naming_the_file(full, tmp_path, how):
    path = full.save(tmp_path / "tree.npz")
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(b"not an archive at all" * 10)
    else:
        path.unlink()
    expect = "not found" if how == "missing" else "truncated or corrupt"
    with pytest.raises(SpecGymError, match=re.escape(repr(str(path))) + ".*" + expect) as info:
        BranchTree.load(path)
    assert "--pair test" in str(info.value)  # the re-record command names the pair of the sidecar


def test_graft_attaches_a_decoded_branch_as_the_full_record_has_it(setup, full, tmp_path):
    cut = setup.tree(max_nodes=2)
    todo = [(n, a) for n in range(cut.n_nodes) for a in (KEEP_TARGET, KEEP_DRAFT) if cut.node_child[n, a] == UNRECORDED]
    assert todo
    item_of = {code: i for i in range(cut.n_items) for code in stops(cut, i)}
    for node, action in todo[:6]:
        item = item_of[node]
        path = stops(cut, item)[node]
        s, _ = setup.follow_path(item, path)
        s.decide(action == KEEP_DRAFT)
        sub = record_item(s, setup.observe, setup.finish, n_features=N_FEATURES, max_nodes=100_000)
        n_before, follow_before = cut.n_nodes, cut.follow.copy()
        code = cut.graft(node, action, sub)
        assert cut.node_child[node, action] == code and (code >= n_before or code <= LEAF)
        assert np.array_equal(cut.follow[:n_before][~np.isnan(follow_before)], follow_before[~np.isnan(follow_before)])
        # the grafted subtree is the full record's subtree at the same choices
        here, there = node_at(cut, item, [*path, action]), node_at(full, item, [*path, action])
        assert cut.follow[node, action] == full.follow[node_at(full, item, path), action]
        mine = {tuple(p): c for c, p in stops(cut, item).items() if p[: len(path) + 1] == [*path, action]}
        theirs = {tuple(p): c for c, p in stops(full, item).items() if p[: len(path) + 1] == [*path, action]}
        assert mine.keys() == theirs.keys() and (here >= 0) == (there >= 0)
        for p, c in mine.items():
            d = theirs[p]
            if c >= 0:
                assert cut.node_obs[c].tobytes() == full.node_obs[d].tobytes()
                assert np.array_equal(cut.best[c], full.best[d])
            else:
                assert cut.leaf_score[LEAF - c] == full.leaf_score[LEAF - d]
                assert cut.text(LEAF - c) == full.text(LEAF - d)
    again = BranchTree.load(cut.save(tmp_path / "grafted.npz"))  # a grafted record passes the checks
    assert_same_arrays(again, cut)
