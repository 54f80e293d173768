"""SpecGym/Arbitration replay (backend="replay"): the same actions give the same episodes as live
decoding, with branches the record lacks decoded on demand or refused; records of something else
are refused."""

from __future__ import annotations

import json
import pickle
import re
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs  # noqa: F401 - registers the ids
from envs.arbitration import KEEP_DRAFT, KEEP_TARGET
from envs.specdec import SpecGymError
from envs.specdec.branches import UNRECORDED, BranchTree

# the ids that decode live by default (an id registered on a bundled record has its own tests,
# test_arbitration_smollm2_math.py: its live side needs the real pair, which the slow tests load)
ARBITRATION_IDS = sorted(
    i for i in gym.registry if i.startswith("SpecGym/Arbitration") and gym.spec(i).kwargs.get("backend") != "replay"
)

# every registered id as registered, and each with the speed term on (Speed-v0 has it already)
CASES = [(i, None) for i in ARBITRATION_IDS] + [(i, 0.5) for i in ARBITRATION_IDS if "Speed" not in i]


def n_episodes(kwargs: dict) -> int:
    """gsm's episodes are a few steps long; tiny-random's random models mismatch at almost every token."""
    return 10 if kwargs["pair"] == "tiny-random" else 25


def same_episodes(live, replay, n_episodes: int, seed: int) -> int:
    """Play both envs with the same reset seeds and actions (random, with a keep-draft rate drawn
    per episode so that deep draft branches are reached too); every output must be identical.
    The number of steps taken."""
    rng = np.random.default_rng(seed)
    steps = 0
    for episode in range(n_episodes):
        p_draft = rng.choice([0.0, 0.3, 0.7, 1.0])
        obs_l, info_l = live.reset(seed=seed + episode)
        obs_r, info_r = replay.reset(seed=seed + episode)
        assert obs_l.dtype == obs_r.dtype and obs_l.tobytes() == obs_r.tobytes()
        assert info_l == info_r
        terminated = False
        while not terminated:
            action = KEEP_DRAFT if rng.random() < p_draft else KEEP_TARGET
            out_l, out_r = live.step(action), replay.step(action)
            obs_l, reward_l, terminated, truncated_l, info_l = out_l
            obs_r, reward_r, terminated_r, truncated_r, info_r = out_r
            assert obs_l.dtype == obs_r.dtype and obs_l.tobytes() == obs_r.tobytes(), (episode, steps)
            assert (reward_l, terminated, truncated_l) == (reward_r, terminated_r, truncated_r), (episode, steps)
            assert type(reward_l) is type(reward_r) is float
            assert info_l == info_r, (episode, steps)
            steps += 1
        assert {"text", "correctness", "correct", "mean_accepted_length", "episode_speed_reward"} <= info_r.keys()
    return steps


@pytest.mark.parametrize(("env_id", "speed_weight"), CASES)
def test_replay_equals_live(env_id, speed_weight, arbitration_env_kwargs, branch_record):
    extra = {} if speed_weight is None else {"speed_weight": speed_weight}
    kwargs = arbitration_env_kwargs(env_id, **extra)
    traces = branch_record(**kwargs)
    live = gym.make(env_id, **kwargs)
    replay = gym.make(env_id, **kwargs, backend="replay", traces=traces)
    steps = same_episodes(live, replay, n_episodes(kwargs), seed=0)
    inner = replay.unwrapped
    assert inner.replay_steps == steps > n_episodes(kwargs)
    if inner.speed_weight:
        assert inner.speed_weight == 0.5


@pytest.mark.parametrize("env_id", ARBITRATION_IDS)
def test_a_tiny_node_budget_decodes_branches_on_demand_and_still_equals_live(
    env_id, arbitration_env_kwargs, branch_record
):
    kwargs = arbitration_env_kwargs(env_id, speed_weight=0.5)
    traces = branch_record(max_nodes=2, tag=f"on-demand {env_id}", **kwargs)
    assert not BranchTree.load(traces).item_complete.all()
    live = gym.make(env_id, **kwargs)
    replay = gym.make(env_id, **kwargs, backend="replay", traces=traces, unrecorded="decode")
    steps = same_episodes(live, replay, n_episodes(kwargs), seed=100)
    inner = replay.unwrapped
    assert inner.decoded_steps > 0 and inner.replay_steps == steps
    # a grafted branch is served from memory the next time: the same episodes decode nothing new
    decoded = inner.decoded_steps
    same_episodes(live, replay, n_episodes(kwargs), seed=100)
    assert inner.decoded_steps == decoded


def first_unrecorded(tree: BranchTree, item_root: int) -> tuple[list[int], int]:
    """Choices from an item's root (keeping the target) to the first node whose keep-draft branch
    is missing, and that node."""
    path, node = [], item_root
    while tree.node_child[node, KEEP_DRAFT] != UNRECORDED:
        path.append(KEEP_TARGET)
        node = int(tree.node_child[node, KEEP_TARGET])
        assert node >= 0, "this item's keep-target chain has every keep-draft branch"
    return path, node


def test_unrecorded_error_refuses_a_branch_the_record_lacks(arbitration_env_kwargs, branch_record):
    kwargs = arbitration_env_kwargs("SpecGym/Arbitration-Tiny-v0")
    traces = branch_record(max_nodes=2, tag="error", **kwargs)
    env = gym.make("SpecGym/Arbitration-Tiny-v0", **kwargs, backend="replay", traces=traces, unrecorded="error")
    tree = env.unwrapped.tree
    item = next(i for i in range(tree.n_items) if tree.item_root[i] >= 0)
    path, _ = first_unrecorded(tree, int(tree.item_root[item]))
    env.reset(options={"item_index": item})
    for action in path:
        env.step(action)
    with pytest.raises(SpecGymError, match=f"item {item}: choice 1 after {len(path)} decisions is not in the branch"):
        env.step(KEEP_DRAFT)
    assert env.unwrapped.decoded_steps == 0


def test_a_branch_this_machine_decodes_apart_from_the_record_keeps_the_target(
    arbitration_env_kwargs, branch_record, tmp_path
):
    """On another CPU than the recording's, bfloat16 decoding can depart from the record at a
    near-tie: a branch the record lacks then cannot be grafted consistently, so keeping the draft's
    token there is served as keeping the target's, counted, and masked from then on."""
    kwargs = arbitration_env_kwargs("SpecGym/Arbitration-Tiny-v0")
    traces = branch_record(max_nodes=2, tag="departs", **kwargs)
    tree = BranchTree.load(traces)
    item = next(i for i in range(tree.n_items) if tree.item_root[i] >= 0)
    root = int(tree.item_root[item])
    path, node = first_unrecorded(tree, root)
    tree.node_mismatch_ints[root, 3] += 1  # as if the recording machine's target had chosen another token
    other = str(tree.save(tmp_path / "other_machine.npz"))
    envs_ = {
        name: gym.make("SpecGym/Arbitration-Tiny-v0", **kwargs, backend="replay", traces=t)
        for name, t in (("record", traces), ("departs", other))
    }
    outs = {}
    for name, env in envs_.items():
        env.reset(options={"item_index": item})
        for action in path:
            env.step(action)
        assert env.unwrapped.action_masks().tolist() == [True, True]
        outs[name] = env.step(KEEP_TARGET if name == "record" else KEEP_DRAFT)
    (obs_r, *rest_r), (obs_d, *rest_d) = outs["record"], outs["departs"]
    assert obs_r.tobytes() == obs_d.tobytes() and rest_r == rest_d  # keeping the target's token
    inner = envs_["departs"].unwrapped
    assert (inner.unreproduced_steps, inner.decoded_steps) == (1, 0)
    inner.reset(options={"item_index": item})
    for action in path:
        inner.step(action)
    assert inner.action_masks().tolist() == [True, False]
    inner.new_session = lambda index: pytest.fail("a node found departing is decoded again")
    assert list(inner.step(KEEP_DRAFT)[1:]) == rest_r and inner.unreproduced_steps == 2  # a caller without masks


@pytest.mark.parametrize("env_id", ARBITRATION_IDS)
def test_replay_env_passes_the_checkers_and_pickles(env_id, arbitration_env_kwargs, branch_record):
    kwargs = arbitration_env_kwargs(env_id)
    env = gym.make(env_id, **kwargs, backend="replay", traces=branch_record(**kwargs))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
        sb3_check_env(env)
    clone = pickle.loads(pickle.dumps(env))
    assert clone.unwrapped.backend == "replay" and clone.unwrapped.tree is not None
    assert np.array_equal(clone.reset(seed=3)[0], env.reset(seed=3)[0])
    again = gym.make(gym.envs.registration.EnvSpec.from_json(env.spec.to_json()))
    assert np.array_equal(again.reset(seed=3)[0], env.reset(seed=3)[0])


# -- bad input -------------------------------------------------------------------------------
TINY = "SpecGym/Arbitration-Tiny-v0"


@pytest.fixture
def tiny(arbitration_env_kwargs, branch_record):
    kwargs = arbitration_env_kwargs(TINY)
    return kwargs, branch_record(**kwargs)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"pair": "gsm"}, "was made with pair='tiny-random', this env has 'gsm'; pass pair='tiny-random'"),
        ({"k": 3}, "was made with k=4, this env has 3; pass k=4"),
        ({"split": "heldout"}, "was made with split='train', this env has 'heldout'; pass split='train'"),
        ({"max_new_tokens": 32}, "was made with max_new_tokens=24, this env has 32; pass max_new_tokens=24"),
        ({"n_items": 5}, "holds 4 items; pass n_items <= that or record more"),
        ({"traces": None}, "backend='replay' needs traces=FILE.npz, a branch record; record one with python -m"),
    ],
)
def test_records_of_something_else_are_refused(tiny, overrides, message):
    kwargs, traces = tiny
    kwargs = {"traces": traces, **kwargs, **overrides}
    with pytest.raises(SpecGymError, match=re.escape(message)):
        gym.make(TINY, backend="replay", **kwargs)


def test_a_record_of_another_build_of_the_pair_is_refused(tiny, monkeypatch):
    kwargs, traces = tiny
    monkeypatch.setattr("envs.arbitration.env.pair_version", lambda name: "0123456789abcdef")  # built again since
    message = (
        "was made with another build of tiny-random (pair_version None, the one loaded now is "
        "'0123456789abcdef'); record it again with python -m experiments.record_traces"
    )
    with pytest.raises(SpecGymError, match=re.escape(message)):
        gym.make(TINY, backend="replay", traces=traces, **kwargs)


def test_a_record_of_another_task_or_other_items_is_refused(tiny, tmp_path):
    kwargs, traces = tiny
    task = tmp_path / "items.jsonl"
    task.write_text("".join(json.dumps({"question": f"{i} + 1?", "answer": f"#### {i + 1}"}) + "\n" for i in range(4)))
    with pytest.raises(SpecGymError, match=f"was made with task='chain_sum', this env has '{task}'"):
        gym.make(TINY, backend="replay", traces=traces, **{**kwargs, "task": str(task)})
    tree = BranchTree.load(traces)
    tree.meta["items_digest"] = "0" * 16  # as if reasoning-gym generated other questions for the seed
    other = tree.save(tmp_path / "other.npz")
    with pytest.raises(SpecGymError, match="holds other items than task 'chain_sum' now generates"):
        gym.make(TINY, backend="replay", traces=str(other), **kwargs)


@pytest.mark.parametrize("how", ["corrupt", "missing"])
def test_unreadable_records_are_refused(tiny, tmp_path, how):
    kwargs, _ = tiny
    path = tmp_path / "broken.npz"
    if how == "corrupt":
        path.write_bytes(b"PK\x03\x04 not really a zip")
    expect = "truncated or corrupt" if how == "corrupt" else "not found"
    with pytest.raises(SpecGymError, match=f"branch record.*{path}.*{expect}.*record_traces --env arbitration"):
        gym.make(TINY, backend="replay", traces=str(path), **kwargs)


@pytest.mark.parametrize(("name", "value"), [("backend", "cache"), ("unrecorded", "skip")])
def test_unknown_backend_or_unrecorded_choice(tiny, name, value):
    kwargs, traces = tiny
    with pytest.raises(SpecGymError, match=f"unknown {name} '{value}'; choose one of"):
        gym.make(TINY, **{"backend": "replay", "traces": traces, **kwargs, name: value})


def test_a_graft_stays_in_the_env_that_decoded_it(arbitration_env_kwargs, branch_record):
    """Envs of one process share a record read-only: one env's on-demand branch does not appear
    in another's (which would then serve it without counting it as decoded, or despite 'error')."""
    kwargs = arbitration_env_kwargs("SpecGym/Arbitration-Tiny-v0")
    traces = branch_record(max_nodes=2, tag="shared", **kwargs)
    decoding = gym.make("SpecGym/Arbitration-Tiny-v0", **kwargs, backend="replay", traces=traces)
    refusing = gym.make("SpecGym/Arbitration-Tiny-v0", **kwargs, backend="replay", traces=traces, unrecorded="error")
    tree = refusing.unwrapped.tree
    item = next(i for i in range(tree.n_items) if tree.item_root[i] >= 0)
    path, _ = first_unrecorded(tree, int(tree.item_root[item]))
    for env in (decoding, refusing):
        env.reset(options={"item_index": item})
        for action in path:
            env.step(action)
    decoding.step(KEEP_DRAFT)
    assert decoding.unwrapped.decoded_steps == 1 and decoding.unwrapped.tree is not tree
    with pytest.raises(SpecGymError, match="is not in the branch record"):
        refusing.step(KEEP_DRAFT)
