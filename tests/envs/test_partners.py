"""Baselines behave as specified; the oracle bounds them all; saved SB3 policies load and partner."""

from __future__ import annotations

import math
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401 - registers the ids
from envs.partners import SB3Policy, make_policy
from envs.specdec import SpecGymError
from envs.specdec.cost import AnalyticCost
from envs.specdec.cycles import SIZE_SCALES, CycleResult, LiveCycles, n_actions
from envs.specdec.decoder import MAX_DEPTH, MAX_WIDTH
from envs.specdec.oracle import Oracle
from envs.specdec.replay import TraceReplay
from envs.specdec.schedules import (
    Composite,
    Confidence,
    ExpectedDepth,
    ExpectedSize,
    Heuristic,
    Policy,
    SpecDecPP,
    StaticDepth,
    rollout,
    run_cycle,
)


def replay(trace_path, width: int = 1) -> TraceReplay:
    return TraceReplay(trace_path(width), cost=AnalyticCost())


def result(depth: int, accepted: int) -> CycleResult:
    return CycleResult(0, depth, depth, accepted, accepted + 1, [1], depth + 1, 1.0, 1.0, 1.0)


class Spy(Policy):
    """Wraps a policy and records (cap, depth reached, result) per cycle."""

    def __init__(self, inner: Policy):
        self.inner, self.log = inner, []

    def reset(self):
        self.inner.reset()

    def plan(self, source):
        self.cap = source.cap
        self.inner.plan(source)

    def keep_drafting(self, source):
        return self.inner.keep_drafting(source)

    def verify_size(self, source):
        self.n_nodes = source.n_nodes
        return self.inner.verify_size(source)

    def observe(self, r):
        self.log.append((self.cap, self.n_nodes, r))
        self.inner.observe(r)


@pytest.mark.parametrize("k", [1, 3, None], ids=["k1", "k3", "kmax"])
def test_static_drafts_k_and_verifies_everything(k, trace_path, dv):
    k = k or dv.max_depth
    src = replay(trace_path, 3)
    spy = Spy(make_policy(f"static-{k}"))
    rollout(spy, src, 0)
    for cap, n_nodes, r in spy.log:
        assert r.depth == min(k, cap) and r.n_verify == n_nodes == r.depth * 3


def test_heuristic_schedule():
    h = Heuristic()
    h.reset()
    assert h.k == 5
    h.observe(result(5, 5))
    assert h.k == 7
    h.observe(result(7, 3))
    assert h.k == 6
    for _ in range(10):
        h.observe(result(h.k, 0))
    assert h.k == 1
    h.reset()
    assert h.k == 5


def test_heuristic_in_rollout(trace_path):
    src = replay(trace_path)
    spy = Spy(Heuristic())
    rollout(spy, src, 1)
    k = 5
    for cap, _, r in spy.log:
        assert r.depth == min(k, cap)
        k = k + 2 if r.accepted_len == r.depth else max(1, k - 1)


def test_confidence_and_specdecpp_thresholds():
    view = SimpleNamespace(newest_prob=0.41, best_logprob=math.log(0.6))
    assert Confidence().keep_drafting(view) and not Confidence(0.5).keep_drafting(view)
    assert SpecDecPP(0.5).keep_drafting(view)  # P(reject) = 0.4 <= 0.5
    assert not SpecDecPP(0.3).keep_drafting(view)
    view.newest_prob = 0.39
    assert not Confidence().keep_drafting(view)


@pytest.mark.parametrize("name", ["confidence", "specdec++"])
def test_threshold_policies_stop_where_specified(name, trace_path):
    """Every stop before the cap came right after the criterion fired, and only then."""
    src = replay(trace_path, 3)
    policy = make_policy(name)

    class Checked(Policy):
        def keep_drafting(self, source):
            go = policy.keep_drafting(source)
            if name == "confidence":
                assert go == (source.newest_prob >= 0.4)
            else:
                assert go == (1 - math.exp(source.best_logprob) <= 0.5)
            return go

    stats = rollout(Checked(), src, 2)
    assert stats.tokens == src.tables(2).n


def test_cycle_times_predict_what_each_size_costs_and_expected_maximises_its_estimate(trace_path):
    src = replay(trace_path, 3)
    expected = make_policy("expected")
    for n_verify in range(10):
        src.start(1)
        src.begin_cycle()
        for _ in range(3):
            src.draft_step()
        times, cum, tokens = src.cycle_times(), src.node_logprobs(), src.new_tokens_by_size()
        assert len(times) == len(cum) + 1 == len(tokens) == 10
        if n_verify == 0:
            ranked = np.sort(cum)[::-1]
            gain = (1 + np.concatenate([[0], np.cumsum(np.exp(ranked))])) / times
            assert expected.verify_size(src) == int(np.argmax(gain))
        result = src.finish_cycle(n_verify)
        assert result.time == pytest.approx(times[n_verify], rel=1e-12)
        assert result.new_tokens == tokens[n_verify]
    assert len(set(tokens.tolist())) > 1  # the sizes' outcomes differ, so the check above can fail


def test_make_policy_names():
    assert make_policy("static-3").k == 3
    assert make_policy("confidence-0.25").threshold == 0.25
    assert make_policy("specdec++-0.7").threshold == 0.7
    assert make_policy("confidence").threshold == 0.4
    assert isinstance(make_policy("heuristic"), Heuristic)
    pair = make_policy("specdec++-0.7+expected")  # the depth rule's own pluses are not the separator
    assert (pair.depth.threshold, pair.size.name, pair.name) == (0.7, "expected", "specdec++-0.7+expected")
    with pytest.raises(SpecGymError, match="unknown policy 'greedy'"):
        make_policy("greedy")
    with pytest.raises(SpecGymError, match="needs a recorded trace"):
        make_policy("oracle")
    with pytest.raises(SpecGymError, match="must be >= 1"):
        StaticDepth(0)


@pytest.mark.parametrize(
    "spec", ["confidence-7", "confidence-0", "specdec++-1.5", "specdec++-0.0", "confidence-2+expected"]
)
def test_thresholds_must_be_probabilities(spec):
    with pytest.raises(SpecGymError, match=r"threshold must be a probability in \(0, 1\] \(.*\), got .*: pass e\.g\."):
        make_policy(spec)


def test_threshold_and_depth_edges_that_are_valid():
    assert make_policy("confidence-1").threshold == 1.0 and make_policy("specdec++-1").threshold == 1.0
    with pytest.raises(SpecGymError, match="probability"):
        Confidence(7)
    with pytest.raises(SpecGymError, match="probability"):
        SpecDecPP(-0.5)
    assert make_policy("static-9").k == 9  # no max_depth to hold it to: drafting is capped where it runs
    assert make_policy("static-6", max_depth=6).k == 6
    with pytest.raises(
        SpecGymError, match=r"'static-7' drafts 7 tokens but max_depth is 6: pass static-K with K in 1\.\.6"
    ):
        make_policy("static-7", max_depth=6)


@pytest.mark.parametrize("width", [1, 3])
def test_oracle_bounds_every_baseline(width, trace_path, dv):
    src = replay(trace_path, width)
    oracle = Oracle(src)
    others = [f"static-{k}" for k in range(1, dv.max_depth + 1)] + ["heuristic", "confidence", "specdec++"]
    for i in range(len(dv.prompts)):
        best = rollout(oracle, src, i)
        total, _ = oracle.solve(i)
        assert best.time == pytest.approx(total[0, 0], rel=1e-12)  # the plan is what the replay charges
        # hindsight on the depth only bounds every baseline (they all verify everything it drafts)
        depth_only = rollout(make_policy("oracle-depth", source=src), src, i)
        assert depth_only.tokens == best.tokens
        assert best.tokens_per_s >= depth_only.tokens_per_s * (1 - 1e-12)
        for name in others:
            stats = rollout(make_policy(name), src, i)
            assert stats.tokens == best.tokens
            assert depth_only.tokens_per_s >= stats.tokens_per_s * (1 - 1e-12), name
        assert best.speedup > 1.0


@pytest.mark.parametrize("width", [1, 3])
def test_oracle_bounds_sending_no_node(width, trace_path, dv):
    """The verify role may send no node (a plain target step). An oracle that always sends some,
    except where all it would send is rejected, beats itself; the oracle covers that choice."""
    src = replay(trace_path, width)
    oracle, some = Oracle(src), Oracle(src)
    some.actions = some.actions[some.actions[:, 1] > 0]

    class NoneIfRejected(Policy):
        def verify_size(self, source):
            n = some.verify_size(source)
            return 0 if source.t.acc[source.position, source.depth - 1, n] == 0 else n

    gained = 0.0
    for i in range(len(dv.prompts)):
        best, plain = rollout(oracle, src, i), rollout(some, src, i)
        other = rollout(Composite(some, NoneIfRejected()), src, i)
        gained += plain.time - other.time
        assert best.time <= other.time * (1 + 1e-12) and best.time <= plain.time * (1 + 1e-12)
    assert gained > 0  # sending none where all is rejected does save time on this trace


def test_oracle_as_size_partner_picks_the_best_size(trace_path):
    src = replay(trace_path, 3)
    oracle = Oracle(src)
    src.start(0)
    src.begin_cycle()
    for _ in range(3):
        src.draft_step()
    n = oracle.verify_size(src)
    assert 1 <= n <= 9
    with pytest.raises(SpecGymError, match="its own trace replay"):
        oracle.verify_size(replay(trace_path, 3))


def test_rollout_live_equals_replay(f64_pair, trace_path, dv):
    src_replay = replay(trace_path, 3)
    ids = [src_replay.trace.prompt(i).prompt.tolist() for i in range(len(dv.prompts))]
    src_live = LiveCycles(f64_pair, ids, cost=AnalyticCost(), width=3, max_depth=dv.max_depth, max_new_tokens=40)
    for name in ("static-3", "heuristic", "specdec++", "specdec+++expected", "expected-depth+expected"):
        for i in range(len(dv.prompts)):
            assert rollout(make_policy(name), src_live, i) == rollout(make_policy(name), src_replay, i)


def test_predicted_cycle_times_live_equal_replay(f64_pair, trace_path, dv):
    """What the ``expected`` rules weigh, now and one draft forward deeper, is the same number live
    and on replay at every depth of every cycle (so their decisions agree bit for bit)."""
    src_replay = replay(trace_path, 3)
    ids = [src_replay.trace.prompt(i).prompt.tolist() for i in range(len(dv.prompts))]
    src_live = LiveCycles(f64_pair, ids, cost=AnalyticCost(), width=3, max_depth=dv.max_depth, max_new_tokens=40)
    checked = 0
    for src in (src_live, src_replay):
        src.start(0)
    while not src_live.done:
        for src in (src_live, src_replay):
            src.begin_cycle()
        deeper = None
        for _ in range(min(3, src_live.cap)):
            for src in (src_live, src_replay):
                src.draft_step()
            assert np.array_equal(src_live.cycle_times(), src_replay.cycle_times())
            if deeper is not None:  # the prediction one forward ahead is what that forward costs
                assert np.array_equal(deeper, src_live.cycle_times())
            deeper = src_live.deeper_cycle_times()
            assert np.array_equal(deeper, src_replay.deeper_cycle_times())
            assert len(deeper) == src_live.n_nodes + 3 + 1 and deeper[0] > src_live.cycle_times()[0]
            checked += 1
        assert src_live.finish_cycle() == src_replay.finish_cycle()
    assert checked > 3


def test_run_cycle_drafts_at_least_once(trace_path):
    src = replay(trace_path)
    src.start(0)
    r = run_cycle(Policy(), src)
    assert r.depth == 1 and r.n_verify == 1


# -- saved SB3 policies ---------------------------------------------------------------------------------
def test_saved_policies_load_and_partner(tmp_path, trace_path, dv):
    from sb3_contrib import MaskablePPO
    from stable_baselines3 import PPO

    kwargs = {"backend": "replay", "traces": trace_path(1), "max_depth": dv.max_depth, "max_new_tokens": 40}
    draft_env = gym.make("SpecGym/DraftVerify-v0", role="draft", **kwargs)
    PPO("MlpPolicy", draft_env, n_steps=32, batch_size=32, n_epochs=1, seed=0).learn(32).save(tmp_path / "d.zip")
    verify_env = gym.make("SpecGym/DraftVerify-v0", role="verify", **kwargs)
    MaskablePPO("MlpPolicy", verify_env, n_steps=32, batch_size=32, n_epochs=1, seed=0).learn(32).save(
        tmp_path / "v.zip"
    )

    depth = make_policy(str(tmp_path / "d.zip"), role="draft")
    size = make_policy(str(tmp_path / "v.zip"), role="verify")
    assert isinstance(depth, SB3Policy) and not depth.maskable and size.maskable

    # each plays partner to the other role's env
    for role, partner in (("verify", "d.zip"), ("draft", "v.zip")):
        env = gym.make("SpecGym/DraftVerify-v0", role=role, partner=str(tmp_path / partner), **kwargs)
        obs, _ = env.reset(seed=0)
        terminated = False
        while not terminated:
            obs, _, terminated, _, info = env.step(int(np.flatnonzero(env.unwrapped.action_masks())[-1]))
        assert info["tokens_generated"] == env.unwrapped.source.tables(env.unwrapped.source.prompt_index).n

    with pytest.raises(SpecGymError, match="expects observations of shape"):
        wide = TraceReplay(trace_path(3), cost=AnalyticCost())
        wide.start(0)
        wide.begin_cycle()
        wide.draft_step()
        depth.keep_drafting(wide)
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(SpecGymError, match="cannot load"):
        make_policy(str(tmp_path / "junk.zip"), role="draft")


@pytest.fixture(scope="module")
def saved_roles(tmp_path_factory, trace_path, dv):
    """Untrained MaskablePPO policies saved from each DraftVerify role (width 1) and a PPO from
    Arbitration: what each holds is told by its spaces, not its weights."""
    from sb3_contrib import MaskablePPO
    from stable_baselines3 import PPO

    out = tmp_path_factory.mktemp("roles")
    kwargs = {"backend": "replay", "traces": trace_path(1), "max_depth": dv.max_depth, "max_new_tokens": dv.max_new}
    for role in ("draft", "verify", "joint"):
        env = gym.make("SpecGym/DraftVerify-v0", role=role, **kwargs)
        MaskablePPO("MlpPolicy", env, n_steps=16, batch_size=16, seed=0).save(out / f"{role}.zip")
    PPO("MlpPolicy", gym.make("SpecGym/Arbitration-Tiny-v0"), n_steps=16, batch_size=16, seed=0).save(out / "arb.zip")
    return out


@pytest.mark.parametrize(
    ("role", "held", "message"),
    [
        ("draft", "draft", r"holds a depth policy \(role 'draft', Discrete\(2\) actions, .*\), but a size policy "),
        ("verify", "verify", r"holds a size policy \(role 'verify', .*\), but a depth policy \(role 'draft'"),
        ("verify", "joint", r"holds a joint policy \(role 'joint', .*\), but a depth policy .* from role='draft'"),
    ],
    ids=["depth-for-size", "size-for-depth", "joint-for-depth"],
)
def test_a_policy_of_the_wrong_role_is_named(role, held, message, saved_roles, replay_env):
    """The env's partner plays the other role: a policy saved from the env's own role is refused
    at construction, saying what the file holds and what was expected."""
    with pytest.raises(SpecGymError, match=message):
        replay_env(role=role, partner=str(saved_roles / f"{held}.zip"))
    with pytest.raises(SpecGymError, match=message):  # without a source too (evaluate's learned policies)
        SB3Policy(saved_roles / f"{held}.zip", "verify" if role == "draft" else "draft")
    other = "verify" if role == "draft" else "draft"
    replay_env(role=role, partner=str(saved_roles / f"{other}.zip")).reset(seed=0)  # the right one works


@pytest.mark.parametrize(("role", "width", "max_depth"), [("verify", 1, 6), ("verify", 3, 3), ("draft", 1, 6)])
def test_an_arbitration_policy_is_not_a_draft_verify_policy(role, width, max_depth, saved_roles, replay_env):
    """Also where DraftVerify's observation has 27 features too (width 3, max_depth 3)."""
    with pytest.raises(
        SpecGymError, match=r"sb3:arb\.zip is not a DraftVerify policy: .*SpecGym/Arbitration's 27 features"
    ):
        replay_env(role=role, width=width, max_depth=max_depth, partner=str(saved_roles / "arb.zip"))


def test_a_policy_of_another_shape_names_the_settings_it_was_trained_with(saved_roles, replay_env):
    with pytest.raises(
        SpecGymError, match=r"expects observations of shape \(22,\), the env gives \(27,\): .*max_depth=6, width=1"
    ):
        replay_env(role="draft", width=3, max_depth=3, partner=str(saved_roles / "verify.zip"))


@pytest.mark.parametrize(("algo", "role"), [("ppo", "draft"), ("maskable", "verify"), ("maskable", "joint")])
def test_saved_policies_act_as_predict_deterministic_does(algo, role, tmp_path, trace_path, dv):
    """SB3Policy reads the logits itself (faster): the same actions as predict(deterministic=True)."""
    from sb3_contrib import MaskablePPO
    from stable_baselines3 import PPO

    kwargs = {"backend": "replay", "traces": trace_path(3), "width": 3, "max_depth": dv.max_depth, "max_new_tokens": 40}
    env = gym.make("SpecGym/DraftVerify-v0", role=role, cost_features="profile", **kwargs)
    cls = MaskablePPO if algo == "maskable" else PPO
    model = cls("MlpPolicy", env, n_steps=64, batch_size=64, n_epochs=2, seed=1).learn(64)
    policy = SB3Policy(model, role)
    source, rng, seen = env.unwrapped.source, np.random.default_rng(0), set()
    for i in range(len(dv.prompts)):
        env.reset(seed=i, options={"prompt_index": i})
        done = False
        while not done:
            mask = source.action_mask(role)
            extra = {"action_masks": mask} if algo == "maskable" else {}
            expected = int(model.predict(source.observation(), deterministic=True, **extra)[0])
            assert policy._act(source) == expected
            seen.add(expected)
            _, _, done, _, _ = env.step(int(rng.choice(np.flatnonzero(env.unwrapped.action_masks()))))
    assert policy.cost_features(dv.max_depth, 3) == "profile"
    # a layout of the same size at another tree shape (width 4, profile-free) is told apart by the shape
    if role == "draft":
        assert policy.cost_features(dv.max_depth, 4) == "ratios"


# -- size_action="expected": the verify role's action scales the expected rule's estimates -----------
def test_scaled_expected_size_action_sizes_by_the_rule(replay_env):
    """Scale 1 is the ``expected`` rule's size at every cycle, scale 0 a plain target step, and a
    larger scale never verifies fewer nodes."""
    env = replay_env(role="verify", width=3, size_action="expected")
    assert env.action_space.n == len(SIZE_SCALES) and env.unwrapped.action_masks().all()
    one, src = SIZE_SCALES.index(1.0), env.unwrapped.source
    env.reset(seed=0)
    done, steps = False, 0
    while not done:
        sizes = [ExpectedSize(s).verify_size(src) for s in SIZE_SCALES]
        assert sizes[0] == 0 and sizes == sorted(sizes) and sizes[one] == ExpectedSize().verify_size(src)
        _, _, done, _, info = env.step(one)
        assert info["n_verify"] == sizes[one]
        steps += 1
    assert steps > 1


def test_a_saved_scaled_size_policy_is_told_by_its_action_space(tmp_path, replay_env):
    from sb3_contrib import MaskablePPO

    verify = replay_env(role="verify", width=3, size_action="expected")
    MaskablePPO("MlpPolicy", verify, n_steps=16, batch_size=16, seed=0).save(tmp_path / "v.zip")
    policy = SB3Policy(tmp_path / "v.zip", "verify")
    assert policy.size_action == "expected"
    # its partner env sizes each cycle as the scaled rule says, whatever scale it picks
    env = replay_env(role="draft", width=3, partner=str(tmp_path / "v.zip"))
    env.reset(seed=0)
    src, done = env.unwrapped.source, False
    while not done:
        if src.depth == src.cap:
            want = ExpectedSize(SIZE_SCALES[policy._act(src)]).verify_size(src)
            _, _, done, _, info = env.step(1)
            assert info["n_verify"] == want
        else:
            _, _, done, _, _ = env.step(0)


def test_no_tree_shape_has_as_many_other_actions_as_there_are_scales():
    shapes = [(d, w) for d in range(1, MAX_DEPTH + 1) for w in range(1, MAX_WIDTH + 1)]
    assert all(n_actions(r, d, w) != len(SIZE_SCALES) for d, w in shapes for r in ("verify", "joint"))


@pytest.mark.parametrize(
    ("role", "value", "message"), [("draft", "expected", "verify role's"), ("verify", "x", "unknown")]
)
def test_size_action_bad_input(role, value, message, replay_env):
    with pytest.raises(SpecGymError, match=message):
        replay_env(role=role, size_action=value)


# -- depth_action="expected": the draft role's action scales the expected-depth rule's estimates ------
def test_expected_depth_drafts_deeper_when_drafting_is_cheaper(trace_path):
    """The rule reads the cost model: with a draft forward nearly free it never drafts less, and
    with one as dear as a target step it stops at once wherever the draft is unsure."""
    depths = {}
    for name, draft_cost in (("cheap", 0.001), ("dear", 1.0)):
        cost = AnalyticCost(draft_base=draft_cost, draft_per_token=0.0, verify_base=1.0, verify_per_token=0.0)
        src = TraceReplay(trace_path(3), cost=cost)
        depths[name] = [r.depth for r in rollout_cycles(ExpectedDepth(), src)]
    assert sum(depths["cheap"]) > sum(depths["dear"]) and max(depths["cheap"]) > 1


def rollout_cycles(policy: Policy, src) -> list[CycleResult]:
    src.start(0)
    policy.reset()
    out = []
    while not src.done:
        out.append(run_cycle(policy, src))
    return out


def test_scaled_expected_depth_action_drafts_by_the_rule(replay_env):
    """Scale 1 keeps drafting exactly when the ``expected-depth`` rule does, scale 0 always stops,
    and every scale is valid (at the cap, each one stops)."""
    env = replay_env(role="draft", width=3, depth_action="expected", partner="expected")
    assert env.action_space.n == len(SIZE_SCALES)
    one, src = SIZE_SCALES.index(1.0), env.unwrapped.source
    env.reset(seed=0)
    done, continued = False, 0
    while not done:
        assert env.unwrapped.action_masks().all() and not ExpectedDepth(0.0).keep_drafting(src)
        depth, keep = src.depth, ExpectedDepth().keep_drafting(src) and src.depth < src.cap
        _, _, done, _, info = env.step(one)
        assert (info["depth"] == depth + 1) if keep else ("n_verify" in info)
        continued += keep
    assert continued > 0
    # at the cap (here every cycle's first forward) every scale stops, the largest too
    capped = replay_env(role="draft", width=3, max_depth=1, depth_action="expected", partner="expected")
    capped.reset(seed=0)
    _, _, _, _, info = capped.step(len(SIZE_SCALES) - 1)
    assert info["depth"] == 1 and "n_verify" in info


def test_a_saved_scaled_depth_policy_is_told_by_its_action_space(tmp_path, replay_env):
    from sb3_contrib import MaskablePPO

    draft = replay_env(role="draft", width=3, depth_action="expected", partner="expected")
    MaskablePPO("MlpPolicy", draft, n_steps=16, batch_size=16, seed=0).save(tmp_path / "d.zip")
    policy = SB3Policy(tmp_path / "d.zip", "draft")
    assert (policy.depth_action, policy.size_action) == ("expected", "nodes")
    # as the size env's partner it drafts as the scaled rule says, whatever scale it picks
    env = replay_env(role="verify", width=3, partner=str(tmp_path / "d.zip"))
    env.reset(seed=0)
    src, done = env.unwrapped.source, False
    while not done:
        assert src.depth == src.cap or not ExpectedDepth(SIZE_SCALES[policy._act(src)]).keep_drafting(src)
        _, _, done, _, _ = env.step(src.n_nodes)


@pytest.mark.parametrize(
    ("role", "value", "message"), [("verify", "expected", "draft role's"), ("draft", "x", "unknown")]
)
def test_depth_action_bad_input(role, value, message, replay_env):
    with pytest.raises(SpecGymError, match=message):
        replay_env(role=role, depth_action=value)
