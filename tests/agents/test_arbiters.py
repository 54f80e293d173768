"""Arbitration baselines: names, rules, seeded randomness, and the oracle's guarantee."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401 - registers the ids
from agents.arbiters import (
    AlwaysDraft,
    DraftMarginRule,
    OracleArbiter,
    RandomArbiter,
    TargetOnly,
    TargetProbRule,
    decisive_on_target_path,
    make_arbiter,
    run_item,
    run_replay_item,
)
from envs.arbitration import ArbitrationEnv
from envs.specdec import SpecGymError
from envs.specdec.arbitrate import Mismatch

OBS = np.zeros(27, dtype=np.float32)


def mismatch(**kw) -> Mismatch:
    base = dict(
        index=0,
        block=4,
        draft_token=1,
        target_token=2,
        p_draft_of_draft=0.6,
        p_draft_of_target=0.2,
        p_target_of_draft=0.3,
        p_target_of_target=0.5,
        draft_entropy=1.0,
        target_entropy=1.0,
        draft_margin=0.4,
        target_margin=0.2,
    )
    return Mismatch(**{**base, **kw})


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("target-only", TargetOnly),
        ("always-draft", AlwaysDraft),
        ("random", RandomArbiter),
        ("random-0.2", RandomArbiter),
        ("target-prob-0.3", TargetProbRule),
        ("draft-margin-0", DraftMarginRule),
        ("draft-margin--0.1", DraftMarginRule),
        ("oracle", OracleArbiter),
    ],
)
def test_names(name, cls):
    arbiter = make_arbiter(name)
    assert isinstance(arbiter, cls) and arbiter.name == name


def test_bad_names():
    with pytest.raises(SpecGymError, match="unknown arbiter"):
        make_arbiter("sometimes")
    with pytest.raises(SpecGymError, match="not found"):
        make_arbiter("missing.zip")
    with pytest.raises(SpecGymError, match="probability"):
        make_arbiter("random-1.5")


def test_rules():
    assert TargetProbRule(0.3).keep_draft(OBS, mismatch(p_target_of_draft=0.3))
    assert not TargetProbRule(0.3).keep_draft(OBS, mismatch(p_target_of_draft=0.29))
    assert DraftMarginRule(0.1).keep_draft(OBS, mismatch(p_draft_of_draft=0.7, p_target_of_target=0.5))
    assert not DraftMarginRule(0.3).keep_draft(OBS, mismatch(p_draft_of_draft=0.7, p_target_of_target=0.5))
    assert AlwaysDraft().keep_draft(OBS, mismatch()) and not TargetOnly().keep_draft(OBS, mismatch())


def test_random_is_seeded():
    draws = [RandomArbiter(0.5, seed=3) for _ in range(2)]
    seqs = [[d.keep_draft(OBS, mismatch()) for _ in range(50)] for d in draws]
    assert seqs[0] == seqs[1] and 10 < sum(seqs[0]) < 40


@pytest.fixture(scope="module")
def gsm_env():
    return ArbitrationEnv(pair="gsm", n_items=24, split="heldout", device="cpu")


def test_oracle_never_loses_an_item_target_only_gets_right(gsm_env):
    """Its lookahead keeps the draft's token only where that branch is scored correct and the
    target's is not, so every item target-only solves stays solved (and some may be gained)."""
    for i in range(len(gsm_env.items)):
        target = run_item(gsm_env, TargetOnly(), i)
        oracle = run_item(gsm_env, OracleArbiter(), i)
        assert oracle.correct >= target.correct


def test_target_only_matches_the_target_alone(gsm_env):
    for i in range(6):
        result = run_item(gsm_env, TargetOnly(), i)
        reference = gsm_env.decoder.generate_target(gsm_env.prompt_ids[i], gsm_env.max_new_tokens).tokens
        assert result.tokens == len(reference) and result.draft_kept == 0


def test_decisive_counts_are_what_a_target_only_walk_meets():
    """On the real pair's bundled record (no model load): the mismatches on each item's
    keep-target path, split by what keeping the draft's token would do to the answer, add up to
    what a target-only walk of the record meets, decides and agrees with the oracle on."""
    env = gym.make("SpecGym/Arbitration-SmolLM2-Math-v0", n_items=120).unwrapped
    counts = decisive_on_target_path(env.tree, 120)
    walks = [run_replay_item(env, TargetOnly(), i) for i in range(120)]
    assert counts["mismatches"] == sum(w.mismatches for w in walks) > 0
    assert counts["draft_better"] + counts["draft_worse"] + counts["unknown"] == sum(w.decisive for w in walks)
    assert counts["draft_worse"] + counts["unknown"] == sum(w.agree_decisive for w in walks)  # target-only's side
    assert 0 < counts["items_with_draft_better"] <= counts["draft_better"]
    assert decisive_on_target_path(env.tree, 0)["mismatches"] == 0
    assert json.loads(json.dumps(counts)) == counts  # plain ints: the evaluation JSON holds them
