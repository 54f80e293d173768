"""SpecGym/Arbitration: episodes, rewards, observations, bad input (registered-id checks live in
test_registered.py)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401 - registers the ids
from envs.arbitration import KEEP_DRAFT, KEEP_TARGET, N_FEATURES, ArbitrationEnv
from envs.specdec import SpecGymError
from envs.tasks.math import score

TINY = {"pair": "tiny-random", "n_items": 6, "max_new_tokens": 24, "device": "cpu"}


def episode(env, action, index=None):
    obs, info = env.reset(seed=0, options=None if index is None else {"item_index": index})
    steps, total_speed, rewards = 0, 0.0, []
    while True:
        obs, reward, terminated, truncated, info = env.step(action)
        steps += 1
        total_speed += info["speed_reward"]
        rewards.append(reward)
        assert not truncated
        if terminated:
            return info, steps, total_speed, rewards


def test_always_target_is_target_greedy_and_scored():
    env = ArbitrationEnv(pair="gsm", n_items=4, split="heldout")
    checked = []
    for i in range(4):
        session = env.new_session(i)
        if session.advance() is None:
            continue  # no mismatch: the env refuses the item as an episode
        info, steps, _, rewards = episode(env, KEEP_TARGET, i)
        ids = env.prompt_ids[i]
        reference = env.decoder.generate_target(ids, env.max_new_tokens).tokens
        assert info["text"] == env.pair.tokenizer.decode(reference, skip_special_tokens=True)
        assert rewards[-1] == info["correctness"] == score(env.items[i], info["text"])
        assert info["draft_kept"] == 0 and steps == info["mismatches"] >= 1
        checked.append(i)
    # gsm's draft and target disagree somewhere in each of these 4 items (on CPU all 4 are checked);
    # a loop that skipped them all would have checked nothing
    assert checked, "no item had a mismatch: pick items where the draft and the target disagree"


def test_speed_term_counts_accepted_draft_tokens():
    env = ArbitrationEnv(**TINY, speed_weight=0.5)
    info, steps, total_speed, rewards = episode(env, KEEP_DRAFT, 2)
    session = env.new_session(2)
    session.run(lambda m: True)
    # every drafted token that made it into the output, over max_new_tokens, times the weight
    accepted = sum(min(r.accepted_len, len(r.new_tokens)) for r in session.state.records)
    assert total_speed == pytest.approx(0.5 * accepted / 24)
    assert info["episode_speed_reward"] == pytest.approx(total_speed)
    assert sum(rewards) == pytest.approx(total_speed + info["correctness"])
    assert info["draft_kept"] == info["mismatches"] == steps


def test_observation_layout():
    env = ArbitrationEnv(**TINY)
    obs, _ = env.reset(seed=3)
    assert obs.shape == (N_FEATURES,) and obs.dtype == np.float32
    m = env.session.pending
    assert obs[0] == pytest.approx(m.p_draft_of_draft, abs=1e-6)
    assert obs[3] == pytest.approx(m.p_target_of_target, abs=1e-6)
    assert m.p_target_of_target >= m.p_target_of_draft  # the target's token is its argmax
    assert m.draft_token != m.target_token
    classes = env.classes
    assert np.array_equal(obs[15:20], classes[m.draft_token]) and np.array_equal(obs[20:25], classes[m.target_token])


def test_token_classes_on_the_byte_tokenizer():
    env = ArbitrationEnv(**TINY)
    tok = env.pair.tokenizer
    digit, plus, hash_, newline = (tok.encode(c)[0] for c in ("7", "+", "#", "\n"))
    assert env.classes[digit][0] == 1 and env.classes[plus][1] == 1
    assert env.classes[hash_][2] == 1 and env.classes[newline][3] == 1


def test_token_classes_on_smollm2s_bpe_tokenizer():
    """smollm2-math's features on its real BPE vocabulary (the bundled SmolLM2 draft's tokenizer,
    the target's): digits split one per token, operators with their leading space, the answer marker."""
    from transformers import AutoTokenizer

    from envs.arbitration.features import class_flags
    from envs.pairs.build import BUNDLED

    tok = AutoTokenizer.from_pretrained(BUNDLED / "smollm2-135m-draft")
    flags = class_flags(tok, len(tok) + 3)  # the embedding's padding rows past the tokenizer get no class
    ids = tok.encode("12 + 345 = 357\n#### 357")
    spelled = [tok.decode([i]) for i in ids]
    want = {"1": 0, "7": 0, " +": 1, " =": 1, "####": 2, "\n": 3, " ": 4}
    for piece, column in want.items():
        row = flags[ids[spelled.index(piece)]]
        assert row[column] == 1 and row.sum() == 1, (piece, row)
    assert not flags[len(tok) :].any()
    word = tok.encode(" answer")[0]
    assert not flags[word].any()


def test_item_without_mismatch_is_skipped_at_random_and_refused_by_index(monkeypatch):
    env = ArbitrationEnv(**TINY)
    original = env.new_session
    blocked = {0, 1}

    def no_mismatch(index):
        session = original(index)
        if index in blocked:
            session.run(lambda m: False)  # decode it fully: advance() now returns None
        return session

    monkeypatch.setattr(env, "new_session", no_mismatch)
    for seed in range(5):
        _, info = env.reset(seed=seed)
        assert info["item_index"] not in blocked
    with pytest.raises(SpecGymError, match="without a single mismatch"):
        env.reset(options={"item_index": 0})


def test_one_item_with_a_mismatch_among_many_without_is_always_found(monkeypatch):
    """Draws repeat items: n draws that all miss the one item with a mismatch are no reason to give up."""
    env = ArbitrationEnv(**TINY)
    original, blocked = env.new_session, set(range(5))  # only item 5 has a decision to make

    def no_mismatch(index):
        session = original(index)
        if index in blocked:
            session.run(lambda m: False)
        return session

    monkeypatch.setattr(env, "new_session", no_mismatch)
    draws = [env.reset(seed=seed)[1] for seed in range(12)]
    assert {info["item_index"] for info in draws} == {5}
    assert max(info["skipped_items"] for info in draws) >= len(env.items)  # a run of misses longer than n
    blocked.add(5)
    env._decision_free.clear()
    with pytest.raises(SpecGymError, match="no mismatch in any of the 6 items"):
        env.reset(seed=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": "test"}, "unknown split"),
        ({"k": 0}, "k \\(drafted tokens"),
        ({"n_items": 0}, "n_items"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"speed_weight": -1.0}, "speed_weight must be a number >= 0"),
        ({"speed_weight": "x"}, r"speed_weight must be a number >= 0 .*, got 'x'"),
        ({"speed_weight": float("nan")}, "speed_weight must be a number >= 0"),
        ({"device": "tpu"}, r"unknown device 'tpu'; choose auto, cpu, cuda or cuda:N"),
        ({"task": "no_such_task"}, "unknown reasoning-gym task"),
        ({"task": "missing.jsonl"}, "not found"),
        ({"pair": "nope"}, "known pairs"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(SpecGymError, match=message):
        ArbitrationEnv(**{**TINY, **kwargs})


def test_step_before_reset_and_bad_index():
    env = gym.make("SpecGym/Arbitration-Tiny-v0").unwrapped
    with pytest.raises(SpecGymError, match="reset"):
        env.step(0)
    with pytest.raises(SpecGymError, match="item_index"):
        env.reset(options={"item_index": 99})


@pytest.mark.parametrize("action", [5, -1, "1", 1.0, np.array([0, 1])])
def test_actions_outside_the_action_space_are_refused(action):
    env = gym.make("SpecGym/Arbitration-Tiny-v0")
    env.reset(seed=0)
    pending = env.unwrapped.session.pending
    with pytest.raises(SpecGymError, match=r"is not in the action space Discrete\(2\): pass one integer in 0\.\.1"):
        env.step(action)
    assert env.unwrapped.session.pending is pending  # nothing decided


def test_integer_actions_come_as_python_or_numpy_scalars_or_one_element_arrays():
    """SB3 passes numpy integers; every form of the same choice plays the same episode."""
    runs = []
    for form in (int, np.int64, np.array, lambda a: np.array([a])):
        env = gym.make("SpecGym/Arbitration-Tiny-v0")
        env.reset(seed=0)
        rewards, done = [], False
        while not done:
            _, reward, done, _, info = env.step(form(KEEP_DRAFT))
            rewards.append(reward)
        runs.append((rewards, info["text"], info["draft_kept"]))
    assert all(run == runs[0] for run in runs) and runs[0][2] >= 1


def test_gsm8k_jsonl_task(tmp_path):
    path = tmp_path / "gsm8k.jsonl"
    path.write_text('{"question": "What is 2 + 3?", "answer": "2 + 3 = 5\\n#### 5"}\n')
    env = ArbitrationEnv(**{**TINY, "task": str(path), "n_items": 1})
    assert env.items[0].answer == "5"
