"""SpecGym/DraftVerify: API checks on every registered id, determinism, pickling, specs,
live/replay exactness, action masks, rewards and bad input."""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.registration import EnvSpec
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs  # noqa: F401 - registers the ids
from envs.draft_verify import CONTINUE
from envs.specdec import SpecGymError, SpeculativeDecoder
from envs.specdec.cycles import obs_layout
from envs.specdec.trace import Trace

REGISTERED = sorted(i for i in gym.registry if i.startswith("SpecGym/DraftVerify"))
ROLES = ("draft", "verify", "joint")


def test_registered_ids():
    assert {"SpecGym/DraftVerify-v0", "SpecGym/DraftVerify-Draft-v0", "SpecGym/DraftVerify-Verify-v0"} <= set(
        REGISTERED
    )
    assert "SpecGym/DraftVerify-Joint-v0" in REGISTERED


# -- the replay backend through the same checks ----------------------------------------------------
@pytest.mark.parametrize("role", ROLES)
def test_replay_checkers(role, trace_path, dv):
    env = gym.make(
        "SpecGym/DraftVerify-v0",
        role=role,
        backend="replay",
        traces=trace_path(3),
        width=3,
        max_depth=dv.max_depth,
        max_new_tokens=40,
        partner=None if role == "joint" else "oracle",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
        sb3_check_env(env)
    spec = EnvSpec.from_json(env.spec.to_json())
    assert spec.kwargs["traces"] == trace_path(3)
    clone = pickle.loads(pickle.dumps(env.unwrapped))
    assert np.array_equal(clone.reset(seed=2)[0], env.unwrapped.reset(seed=2)[0])


# -- live and replay give the same results for the same actions -------------------------------------
@pytest.mark.parametrize("width", [1, 3])
@pytest.mark.parametrize(
    ("role", "partner", "reward"),
    [
        ("draft", None, "throughput"),
        ("verify", "confidence-0.3", "throughput"),
        ("verify", "heuristic", "net_tokens"),
        ("joint", None, "net_tokens"),
    ],
)
def test_replay_matches_live(role, partner, reward, width, live_kwargs, trace_path, dv, play):
    common = {"role": role, "partner": partner, "reward": reward, "width": width}
    live = gym.make("SpecGym/DraftVerify-v0", **common, **live_kwargs, n_prompts=len(dv.prompts))
    replay = gym.make(
        "SpecGym/DraftVerify-v0",
        **common,
        backend="replay",
        traces=trace_path(width),
        max_depth=dv.max_depth,
        max_new_tokens=live_kwargs["max_new_tokens"],
    )
    for index in range(len(dv.prompts)):
        obs_l, rew_l, info_l = play(live, np.random.default_rng(index), index=index)
        obs_r, rew_r, info_r = play(replay, np.random.default_rng(index), index=index)
        assert rew_l == rew_r  # bit for bit: same cost-model calls, same order
        assert info_l == info_r
        assert info_l[-1]["tokens_generated"] == len(live.unwrapped.source.state.new_tokens)
        assert all(np.allclose(x, y, atol=1e-6) for x, y in zip(obs_l, obs_r, strict=True))


def test_replay_matches_live_with_the_rule_scaled_depth_action(live_kwargs, trace_path, dv, play):
    """``depth_action="expected"`` decides from predicted cycle times one draft forward ahead: the
    live engine and the replay predict them bit for bit (test_partners checks the times at every
    depth), so random scales give the same episodes."""
    common = {"role": "draft", "depth_action": "expected", "width": 3, "partner": "expected"}
    live = gym.make("SpecGym/DraftVerify-v0", **common, **live_kwargs, n_prompts=len(dv.prompts))
    replay = gym.make(
        "SpecGym/DraftVerify-v0",
        **common,
        backend="replay",
        traces=trace_path(3),
        max_depth=dv.max_depth,
        max_new_tokens=live_kwargs["max_new_tokens"],
    )
    for index in range(len(dv.prompts)):
        _, rew_l, info_l = play(live, np.random.default_rng(index), index=index)
        _, rew_r, info_r = play(replay, np.random.default_rng(index), index=index)
        assert rew_l == rew_r and info_l == info_r


def test_trace_trees_equal_live_trees(f64_pair, trace_path):
    """The recorded tree at every position equals the one the engine drafts there (first d levels)."""
    for width in (1, 3):
        trace = Trace.load(trace_path(width))
        dec = SpeculativeDecoder(f64_pair)
        for i in range(trace.n_prompts):
            pt = trace.prompt(i)
            out = dec.generate(pt.prompt.tolist(), 40, depth=4, width=width)
            assert out.tokens == pt.output.tolist()
            for rec in out.records:
                pos = rec.context_len - len(pt.prompt)
                d = rec.draft_forwards
                assert rec.draft_tokens == pt.tokens[pos, :d].ravel().tolist()
                assert rec.parents == pt.parents[pos, :d].ravel().tolist()
                assert np.allclose(rec.cum_logprobs, pt.cum_logprobs[pos, :d].ravel(), atol=1e-9)
                assert np.allclose(rec.draft_probs, pt.probs[pos, :d].ravel(), atol=1e-9)
                assert np.allclose(rec.draft_entropies, pt.entropies[pos, :d].ravel(), atol=1e-9)


# -- action masks -------------------------------------------------------------------------------------
def test_draft_role_forces_stop_at_max_depth(dv, replay_env):
    env = replay_env(role="draft")
    env.reset(seed=0, options={"prompt_index": 0})
    inner = env.unwrapped
    for depth in range(1, dv.max_depth):
        assert inner.action_masks().tolist() == [True, True] and inner.source.depth == depth
        obs, reward, *_ = env.step(CONTINUE)
        assert reward == 0.0 and obs[obs_layout(dv.max_depth, 1)["depth"]][0] == pytest.approx(
            (depth + 1) / dv.max_depth
        )
    assert inner.action_masks().tolist() == [False, True]
    _, reward, _, _, info = env.step(CONTINUE)  # continue at the cap is a stop
    assert info["depth"] == dv.max_depth and reward > 0


def test_verify_role_masks_sizes_above_drafted_nodes(dv, replay_env):
    env = replay_env(role="verify", width=3, partner="static-2")
    env.reset(seed=0, options={"prompt_index": 1})
    mask = env.unwrapped.action_masks()
    assert mask.shape == (dv.max_depth * 3 + 1,) and mask.sum() == 2 * 3 + 1 and mask[: 2 * 3 + 1].all()
    _, _, _, _, info = env.step(dv.max_depth * 3)  # above the drafted nodes: verifies all of them
    assert info["n_verify"] == 6 and info["depth"] == 2
    _, _, _, _, info = env.step(0)  # plain target step
    assert info["n_verify"] == 0 and info["accepted_len"] == 0 and info["new_tokens"] == 1


def test_joint_role_masks_depths_above_the_cap(dv, replay_env):
    env = replay_env(role="joint")
    env.reset(seed=0, options={"prompt_index": 2})
    inner = env.unwrapped
    table = inner.joint_table
    assert len(table) == env.action_space.n and all(1 <= n <= d for d, n in table)
    assert inner.action_masks().all()
    last = int(np.flatnonzero((table[:, 0] == dv.max_depth) & (table[:, 1] == dv.max_depth))[0])
    terminated, masked = False, 0
    while not terminated:
        cap = inner.source.cap
        assert inner.action_masks().tolist() == (table[:, 0] <= cap).tolist()
        masked += cap < dv.max_depth
        _, _, terminated, _, info = env.step(last)  # the deepest: clipped to the cap near the end
        assert info["depth"] == cap
    assert masked


# -- actions outside the action space -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("role", "action", "message"),
    [
        ("draft", 7, r"action 7 is not in the action space Discrete\(2\): pass one integer in 0\.\.1 \(0 = continue"),
        ("draft", -1, r"action -1 is not in the action space Discrete\(2\): pass one integer in 0\.\.1"),
        ("draft", "0", r"action '0' is not in the action space"),
        ("draft", 0.0, r"action 0\.0 is not in the action space"),
        ("draft", np.array([0, 1]), r"action array\(\[0, 1\]\) is not in the action space Discrete\(2\)"),
        ("verify", -5, r"action -5 is not in the action space Discrete\(7\): pass one integer in 0\.\.6 \(the number"),
        ("verify", 7, r"action 7 is not in the action space Discrete\(7\)"),
        ("joint", -1, r"action -1 is not in the action space Discrete\(21\): pass one integer in 0\.\.20 \(an index"),
        ("joint", 10**6, r"action 1000000 is not in the action space Discrete\(21\)"),
    ],
)
def test_actions_outside_the_action_space_are_refused(role, action, message, replay_env):
    env = replay_env(role=role)
    env.reset(seed=0, options={"prompt_index": 0})
    with pytest.raises(SpecGymError, match=message):
        env.step(action)
    assert env.unwrapped.source.depth == (1 if role == "draft" else 4 if role == "verify" else 0)  # nothing ran


@pytest.mark.parametrize("role", ["draft", "verify", "joint"])
def test_integer_actions_come_as_python_or_numpy_scalars_or_one_element_arrays(role, replay_env):
    """SB3 passes numpy integers (VecEnvs index their action array); all forms act alike."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    forms = (int, np.int64, np.int32, np.array, lambda a: np.array([a]))
    episodes = []
    for form in forms:
        env = replay_env(role=role)
        env.reset(seed=0, options={"prompt_index": 1})
        infos, done = [], False
        while not done:
            _, _, done, _, info = env.step(form(int(np.flatnonzero(env.unwrapped.action_masks())[-1])))
            infos.append(info)
        episodes.append(infos)
    assert all(infos == episodes[0] for infos in episodes)
    venv = DummyVecEnv([lambda: replay_env(role=role)])
    venv.reset()
    _, _, _, infos = venv.step(np.array([int(np.flatnonzero(venv.envs[0].unwrapped.action_masks())[-1])]))
    assert "prompt_index" in infos[0]


# -- rewards ---------------------------------------------------------------------------------------------
def test_net_tokens_reward(play, replay_env):
    env = replay_env(role="joint", reward="net_tokens")
    _, rewards, infos = play(env, np.random.default_rng(0), index=0)
    src = env.unwrapped.source
    t = src.tables(0)
    rate = [1.0 / t.verify[i["context_len"] - t.prompt_len, 0] for i in infos[1:]]
    expected = [i["new_tokens"] - r * i["cycle_time"] for i, r in zip(infos[1:], rate, strict=True)]
    assert rewards == pytest.approx(expected)
    assert sum(i["new_tokens"] for i in infos[1:]) == t.n
    fixed = replay_env(role="joint", reward="net_tokens", rate=50.0)
    _, rewards, infos = play(fixed, np.random.default_rng(0), index=0)
    assert rewards == pytest.approx([i["new_tokens"] - 50.0 * i["cycle_time"] for i in infos[1:]])


def test_throughput_reward_and_info(play, replay_env):
    env = replay_env(role="draft")
    _, rewards, infos = play(env, np.random.default_rng(3), index=1)
    ends = [(r, i) for r, i in zip(rewards, infos[1:], strict=True) if "cycle_time" in i]
    assert all(r == 0.0 for r, i in zip(rewards, infos[1:], strict=True) if "cycle_time" not in i)
    for reward, info in ends:
        assert set(info) >= {"accepted_len", "new_tokens", "cycle_time", "tokens_generated", "depth"}
        assert reward == pytest.approx(info["new_tokens"] / info["cycle_time"])
        assert info["accepted_len"] <= info["depth"] and info["new_tokens"] <= info["accepted_len"] + 1


@pytest.mark.parametrize(("width", "partner"), [(1, "static-4"), (3, "static-4"), (3, "oracle")])
def test_token_credit_redistributes_each_cycle_exactly(width, partner, dv, play, replay_env):
    """Same actions: every cycle's rewards sum to the cycle-credit reward; continue steps are paid
    by the hindsight run (accepted tokens their forward adds, minus its time at the target rate)."""
    kw = dict(role="draft", reward="net_tokens", width=width, partner=partner)
    cycle, token = replay_env(**kw), replay_env(credit="token", **kw)
    token.reset(options={"prompt_index": 0})
    token.step(CONTINUE)  # an episode abandoned mid-cycle leaves nothing owed to the next
    for index in range(len(dv.prompts)):
        _, by_cycle, infos = play(cycle, np.random.default_rng(index), index=index)
        obs_c, by_token, infos_t = play(token, np.random.default_rng(index), index=index)
        assert [i.get("cycle_time") for i in infos] == [i.get("cycle_time") for i in infos_t]
        ends = [k for k, i in enumerate(infos[1:]) if "cycle_time" in i]
        start = 0
        for end in ends:
            assert sum(by_token[start : end + 1]) == pytest.approx(by_cycle[end], abs=1e-9)
            assert all(r == 0.0 for r in by_cycle[start:end])
            start = end + 1
        assert sum(by_token) == pytest.approx(sum(by_cycle), abs=1e-9)
    # a continue step's reward: + its token if the trace accepts it, - the time it adds at the target
    # rate: its forward and its level's share of verifying the whole tree (the first forward is no
    # decision: its token is paid at the stop, not to the first continue)
    src, first_accepted = token.unwrapped.source, 0
    for index in range(len(dv.prompts)):
        token.reset(options={"prompt_index": index})
        t, pos = src.t, src.position
        _, reward, *_ = token.step(CONTINUE)
        first_accepted += int(t.acc[pos, 0, width])
        gained = int(t.acc[pos, 1, 2 * width]) - int(t.acc[pos, 0, width])
        added = t.draft_level[pos] + t.verify[pos, 2 * width] - t.verify[pos, width]
        assert t.verify[pos, 2 * width] > t.verify[pos, width]  # so the check tells the time terms apart
        assert reward == pytest.approx(gained - added / t.verify[pos, 0])
    assert first_accepted > 0  # the check above can tell the two apart


def test_best_static_rate_is_the_best_static_throughput_on_the_trace(play, replay_env):
    from envs.partners import make_policy
    from envs.specdec.schedules import best_static_rate, rollout

    env = replay_env(reward="net_tokens", rate="best_static", width=3)
    src = env.unwrapped.source
    rates = []
    for k in range(1, src.max_depth + 1):
        runs = [rollout(make_policy(f"static-{k}"), src, i) for i in range(src.n_prompts)]
        rates.append(sum(r.tokens for r in runs) / sum(r.time for r in runs))
    assert env.unwrapped.rate == pytest.approx(max(rates)) == pytest.approx(best_static_rate(src))
    assert len(set(np.round(rates, 6))) > 1  # the maximum is a real choice on this trace
    assert env.spec.to_json() and pickle.loads(pickle.dumps(env)).unwrapped.rate == env.unwrapped.rate
    _, rewards, infos = play(env, np.random.default_rng(0), index=0)
    ends = [(r, i) for r, i in zip(rewards, infos[1:], strict=True) if "cycle_time" in i]
    assert [r for r, _ in ends] == pytest.approx([i["new_tokens"] - max(rates) * i["cycle_time"] for _, i in ends])


@pytest.mark.parametrize("role", ["verify", "joint"])
def test_token_credit_is_cycle_credit_where_every_step_ends_a_cycle(role, dv, play, replay_env):
    kw = dict(role=role, reward="net_tokens", width=3)
    cycle, token = replay_env(**kw), replay_env(credit="token", **kw)
    for index in range(len(dv.prompts)):
        assert play(cycle, np.random.default_rng(index), index=index)[1] == pytest.approx(
            play(token, np.random.default_rng(index), index=index)[1], abs=1e-12
        )


@pytest.mark.parametrize("kwargs", [{"reward": "throughput"}, {"backend": "live"}])
def test_token_credit_needs_replay_and_net_tokens(kwargs, trace_path, live_kwargs):
    base = {"backend": "replay", "traces": trace_path(1), "reward": "net_tokens", "credit": "token"}
    if kwargs.get("backend") == "live":
        base = {**live_kwargs, "reward": "net_tokens", "credit": "token"}
    with pytest.raises(SpecGymError, match="credit='token' needs"):
        gym.make("SpecGym/DraftVerify-v0", **{**base, **kwargs})


# -- bad input ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"role": "size"}, "unknown role 'size'"),
        ({"backend": "gpu"}, "unknown backend 'gpu'"),
        ({"reward": "speed"}, "unknown reward 'speed'"),
        ({"split": "test"}, "unknown split 'test'"),
        ({"credit": "step"}, "unknown credit 'step'"),
        ({"backend": "replay"}, "needs traces=FILE.npz"),
        ({"backend": "replay", "traces": "/nonexistent/t.npz"}, "not found; record one"),
        ({"cost_model": "fast"}, "unknown cost model"),
        ({"partner": "static-x"}, "unknown policy 'static-x'"),
        ({"partner": "oracle"}, "needs a recorded trace"),
        ({"partner": "/nonexistent/policy.zip"}, "saved policy .* not found"),
        ({"role": "joint", "partner": "static-2"}, "leave partner unset"),
        ({"reward": "net_tokens", "cost_model": "measured"}, "needs an explicit rate"),
        ({"rate": -1.0, "reward": "net_tokens"}, "rate must be > 0"),
        ({"rate": "fast", "reward": "net_tokens"}, "rate must be > 0 tokens/s or 'best_static'"),
        ({"rate": "best_static", "reward": "net_tokens"}, "rate='best_static' .* needs backend='replay'"),
        ({"rate": 50.0}, "rate= prices time in reward='net_tokens'"),
        ({"max_depth": 0}, "draft length / tree depth must be"),
        ({"partner": "confidence-7"}, r"confidence threshold must be a probability in \(0, 1\] .*, got 7\.0"),
        ({"partner": "specdec++-0"}, r"specdec\+\+ threshold must be a probability in \(0, 1\]"),
        ({"partner": "confidence-1.5+expected", "role": "verify"}, r"must be a probability in \(0, 1\]"),
        ({"partner": "static-7", "role": "verify"}, r"'static-7' drafts 7 tokens but max_depth is 6: .* 1\.\.6"),
        ({"partner": "static-9+expected", "role": "verify"}, "'static-9' drafts 9 tokens but max_depth is 6"),
        ({"device": "tpu"}, r"unknown device 'tpu'; choose auto, cpu, cuda or cuda:N"),
        ({"device": "cuda:x"}, "unknown device 'cuda:x'"),
    ],
)
def test_bad_arguments(kwargs, message, live_kwargs):
    with pytest.raises(SpecGymError, match=message):
        gym.make("SpecGym/DraftVerify-v0", **{**live_kwargs, **kwargs})


def test_static_partner_depths_that_still_work(replay_env):
    """The default static-4 partner is capped at a lower max_depth, and a size partner's K does not
    matter, so neither is refused; the deepest static partner is."""
    env = replay_env(role="verify", max_depth=3)  # default partner static-4
    env.reset(seed=0, options={"prompt_index": 0})
    assert env.unwrapped.source.depth == 3
    replay_env(role="draft", max_depth=3, partner="static-9").reset(seed=0)
    env = replay_env(role="verify", partner="static-6")
    env.reset(seed=0, options={"prompt_index": 0})
    assert env.unwrapped.source.depth == 6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pair": "smollm2-135m"}, "recorded for pair 'tiny-random'"),
        ({"width": 2}, "recorded with width 1"),
        ({"max_depth": 7}, "holds trees to depth 6"),  # one above the fixtures' depth
        ({"max_new_tokens": 41}, "outputs stop at 40"),
        ({"prompts": "other.jsonl"}, "holds prompts from"),
        ({"split": "train"}, "holds the 'heldout' split"),
        ({"n_prompts": 9}, "holds 3 prompts"),
        ({"cost_model": "measured"}, "replay cannot measure"),
    ],
)
def test_bad_replay_arguments(kwargs, message, trace_path, dv):
    base = {"backend": "replay", "traces": trace_path(1), "max_depth": dv.max_depth, "max_new_tokens": 40}
    with pytest.raises(SpecGymError, match=message):
        gym.make("SpecGym/DraftVerify-v0", **{**base, **kwargs})


def test_step_before_reset_and_after_end(play, replay_env):
    env = replay_env(role="joint").unwrapped
    with pytest.raises(SpecGymError, match="call reset"):
        env.step(0)
    play(env, np.random.default_rng(0), index=0)
    with pytest.raises(SpecGymError, match="call reset"):
        env.step(0)
    with pytest.raises(SpecGymError, match="prompt_index must be"):
        env.reset(options={"prompt_index": 7})


# -- the engine pieces under the env: EOS, 1-token prompts, the context window, shorter replays ---------
@pytest.mark.parametrize("width", [1, 3])
@pytest.mark.parametrize("replay_new", [40, 25])
def test_replay_matches_live_cycles_at_the_edges(width, replay_new):
    import torch

    from envs.pairs.tiny import tiny_random_pair
    from envs.specdec.cost import AnalyticCost
    from envs.specdec.cycles import LiveCycles
    from envs.specdec.replay import TraceReplay
    from envs.specdec.trace import record_trace

    pair = tiny_random_pair(0, vocab_size=8, eos=True, dtype=torch.float64)  # EOS comes often
    prompts = [[1], [3, 2, 1], [5, 1, 4, 2], [2] * 480]  # one token; several; filling the 512 window
    trace = record_trace(pair, prompts, max_new_tokens=40, width=width, max_depth=5, progress=False, chunk=7)
    assert trace.eos_stop.any() and not trace.eos_stop.all()
    live = LiveCycles(pair, prompts, cost=AnalyticCost(), width=width, max_depth=5, max_new_tokens=replay_new)
    replay = TraceReplay(trace, cost=AnalyticCost(), max_new_tokens=replay_new)
    rng = np.random.default_rng(width)
    for i in range(len(prompts)):
        live.start(i)
        replay.start(i)
        while not live.done:
            assert not replay.done and live.cap == replay.cap and live.pending == replay.pending
            depth = int(rng.integers(1, live.cap + 1))
            for src in (live, replay):
                src.begin_cycle()
                for _ in range(depth):
                    src.draft_step()
            assert np.allclose(live.observation(), replay.observation(), atol=1e-6)
            n = int(rng.integers(0, depth * width + 1))
            assert live.finish_cycle(n) == replay.finish_cycle(n)
        assert replay.done and live.position == replay.position
        assert live.state.new_tokens == trace.prompt(i).output[: live.position].tolist()


def test_trace_file_round_trip(trace_path, tmp_path, dv):
    trace = Trace.load(trace_path(3))
    assert trace.width == 3 and trace.max_depth == dv.max_depth and trace.n_prompts == len(dv.prompts)
    assert trace.meta["pair"] == "tiny-random" and trace.meta["pair_info"]["dtype"] == "float64"
    again = Trace.load(trace.save(tmp_path / "copy.npz"))
    assert (tmp_path / "copy.json").is_file()
    assert all(np.array_equal(getattr(trace, k), getattr(again, k)) for k in ("tree_tokens", "tree_cum_logprobs"))
    with pytest.raises(SpecGymError, match="must end in .npz"):
        trace.save(tmp_path / "copy.bin")
    assert Trace.load_meta(tmp_path / "copy.npz") == trace.meta
    (tmp_path / "bad.npz").write_bytes(b"junk")
    for load in (Trace.load, Trace.load_meta):
        with pytest.raises(SpecGymError, match="cannot read trace"):
            load(tmp_path / "bad.npz")


def test_record_traces_cli_and_env_benchmark(prompt_file, tmp_path):
    import argparse

    from experiments.benchmarks import env as env_benchmark
    from experiments.record_traces import main

    out = tmp_path / "cli.npz"
    main(
        [
            "--pair",
            "tiny-random",
            "--prompts",
            prompt_file,
            "--n-prompts",
            "2",
            "--max-new-tokens",
            "16",
            "--width",
            "2",
            "--max-depth",
            "3",
            "--out",
            str(out),
        ]
    )
    trace = Trace.load(out)
    assert trace.n_prompts == 2 and trace.width == 2 and trace.meta["prompts"] == prompt_file
    parser = argparse.ArgumentParser()
    env_benchmark.add_parser(parser.add_subparsers())
    for backend in ("replay", "live"):
        args = parser.parse_args(
            [
                "env",
                "--backend",
                backend,
                "--pair",
                "tiny-random",
                "--traces",
                str(out),
                "--width",
                "2",
                "--max-depth",
                "3",
                "--max-new-tokens",
                "16",
                "--steps",
                "50",
                "--prompts",
                prompt_file,
                "--n-prompts",
                "2",
            ]
        )
        result = args.run(args)
        assert result["backend"] == backend and result["n_steps"] == 50 and result["steps_per_s"] > 0
    # the training reward options, and the trace's own max_new_tokens when none is given
    training = ["--reward", "net_tokens", "--credit", "token", "--rate", "best_static"]
    shape = ["--width", "2", "--max-depth", "3", "--steps", "50"]
    args = parser.parse_args(["env", "--pair", "tiny-random", "--traces", str(out), *shape, *training])
    result = args.run(args)
    assert result["reward"] == {"reward": "net_tokens", "credit": "token", "rate": "best_static"}
    assert result["steps_per_s"] > 0
    # a training trace times as well as a held-out one (there is no --split to pass)
    trace.meta["split"] = "train"
    trace.save(tmp_path / "train.npz")
    args = parser.parse_args(["env", "--pair", "tiny-random", "--traces", str(tmp_path / "train.npz"), *shape])
    assert args.run(args)["steps_per_s"] > 0


def test_damaged_trace_reaches_the_clis_as_one_line(trace_path, tmp_path, capsys):
    """evaluate (which reads the trace's meta first) and benchmark env (the env loads it) both end in
    the trace reader's one line and exit code 2."""
    from pathlib import Path

    from experiments import benchmark, evaluate
    from experiments.cli import run_main

    bad = tmp_path / "bad.npz"
    bad.write_bytes(Path(trace_path(1)).read_bytes()[:1000])
    commands = (
        (benchmark.main, ["env", "--backend", "replay", "--pair", "tiny-random", "--traces", str(bad)]),
        (evaluate.main, ["--policy", str(tmp_path / "p.zip"), "--pair", "tiny-random", "--traces", str(bad)]),
    )
    for main, argv in commands:
        with pytest.raises(SystemExit) as exited:
            run_main(main, argv)
        assert exited.value.code == 2
        lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip() and "Warning" not in ln]
        assert lines == [
            f"error: cannot read trace {str(bad)!r}: it is truncated or corrupt (BadZipFile); re-record it "
            f"with python -m experiments.record_traces --pair NAME --out {bad}"
        ]
