"""python -m experiments.ablations on tiny-random replay traces: the wrappers, their policy
adapters and the JSON."""

from __future__ import annotations

import hashlib
import json

import gymnasium as gym
import numpy as np
import pytest

from envs.partners import make_policy
from envs.specdec.cost import make_cost_model
from envs.specdec.replay import TraceReplay
from envs.specdec.schedules import Composite, ExpectedSize, rollout
from envs.specdec.trace import Trace
from experiments import ablations

KW = dict(
    pair="tiny-random",
    backend="replay",
    cost_model="analytic",
    width=4,
    max_depth=8,
    split="heldout",
    reward="net_tokens",
    rate="best_static",
)


class Stub:
    """Stands in for a trained model: logs each observation it decides on and picks a valid action
    by a hash of it, so any difference between two observation streams changes the actions too."""

    def __init__(self):
        self.seen: list[np.ndarray] = []

    def predict(self, obs, action_masks, deterministic=True):
        valid = np.flatnonzero(action_masks)
        if len(valid) == 1:  # a forced step (the env asks at the cap, the policy interface does not)
            return valid[0], None
        self.seen.append(np.array(obs, np.float32))
        return valid[int(hashlib.sha1(self.seen[-1].tobytes()).hexdigest(), 16) % len(valid)], None


def play(env: gym.Env, model, prompt: int) -> tuple[float, int]:
    """(return, tokens) of one episode with the model's deterministic actions."""
    obs, _ = env.reset(seed=0, options={"prompt_index": prompt})
    total, done, info = 0.0, False, {}
    while not done:
        action, _ = model.predict(obs, action_masks=env.action_masks(), deterministic=True)
        obs, reward, done, _, info = env.step(int(action))
        total += reward
    return total, info["tokens_generated"]


@pytest.mark.parametrize("variant", ["residual", "generation_stats"])
def test_policy_adapters_see_and_do_what_the_wrapped_env_shows(traces, variant):
    heldout = str(traces / "heldout.npz")
    if variant == "residual":
        env = ablations.ResidualSize(
            gym.make("SpecGym/DraftVerify-Verify-v0", traces=heldout, partner="confidence-0.6", **KW), radius=2
        )
    else:
        env = ablations.GenerationStatsObs(
            gym.make("SpecGym/DraftVerify-Draft-v0", traces=heldout, partner="expected", **KW)
        )
    src = TraceReplay(Trace.load(heldout), cost=make_cost_model("analytic"), width=4, max_depth=8)
    in_env, adapted = Stub(), Stub()
    if variant == "residual":
        policy = Composite(make_policy("confidence-0.6"), ablations.LearnedResidual(adapted, 2))
    else:
        policy = Composite(ablations.LearnedWithStats(adapted, 8), ExpectedSize())
    rate = env.unwrapped.rate
    for prompt in range(src.n_prompts):
        stats = rollout(policy, src, prompt)
        reward, tokens = play(env, in_env, prompt)
        assert tokens == stats.tokens
        assert reward == pytest.approx(stats.tokens - rate * stats.time, rel=1e-9, abs=1e-9)
    assert len(in_env.seen) == len(adapted.seen) > 10
    assert all(np.array_equal(a, b) for a, b in zip(in_env.seen, adapted.seen, strict=True))
    extra = np.array([o[-4:] if variant == "generation_stats" else o[-1:] for o in in_env.seen])
    assert len(np.unique(extra, axis=0)) > 2  # the appended features vary, so the comparison covers them


def test_residual_masks_and_counterfactual_baseline(traces):
    assert ablations.residual_mask(1, 5, 2).tolist() == [False, True, True, True, True]
    assert ablations.residual_mask(4, 5, 2).tolist() == [True, True, True, True, False]
    kw = {**KW, "traces": str(traces / "heldout.npz"), "partner": "static-3"}
    plain = ablations.ResidualSize(gym.make("SpecGym/DraftVerify-Verify-v0", **kw), radius=1)
    baseline = ablations.ResidualSize(gym.make("SpecGym/DraftVerify-Verify-v0", **kw), radius=1, counterfactual=True)
    diffs = []
    for env in (plain, baseline):
        env.reset(seed=0, options={"prompt_index": 0})
    for _ in range(5):
        src, rate = baseline.unwrapped.source, baseline.unwrapped.rate
        mean = float(np.mean(src.new_tokens_by_size() - rate * src.cycle_times()))
        (_, r_plain, done, _, _), (_, r_base, _, _, _) = plain.step(1), baseline.step(1)
        diffs.append(r_plain - r_base - mean)
        if done:
            break
    assert np.allclose(diffs, 0.0)


def test_ablation_json(traces, tmp_path):
    out = tmp_path / "ablation.json"
    ablations.main(
        [
            "residual-size",
            "--pair",
            "tiny-random",
            "--cost-model",
            "analytic",
            "--seeds",
            "0",
            "--timesteps",
            "256",
            "--traces",
            str(traces / "heldout.npz"),
            "--train-traces",
            str(traces / "train.npz"),
            "--out",
            str(out),
        ]
    )
    data = json.loads(out.read_text())
    assert data["benchmark"] == "ablation" and data["role"] == "verify"
    assert set(data["variants"]) == {"plain", "residual", "residual_counterfactual"}
    for variant in ("residual", "residual_counterfactual"):
        assert 0 <= data["variants"][variant]["departs_from_rule"][0] <= 1
    for entry in [*data["variants"].values(), data["reference"]]:
        fractions = np.atleast_1d(entry["fraction_of_oracle"])
        assert ((fractions > 0) & (fractions <= 1 + 1e-12)).all()


def test_bad_input_is_refused(traces):
    from envs.specdec.errors import SpecGymError

    with pytest.raises(SpecGymError, match="unknown ablation 'bogus'; choose one of residual-size"):
        ablations.main(["bogus"])
    env = gym.make(
        "SpecGym/DraftVerify-Verify-v0",
        **{**KW, "reward": "throughput", "rate": None},
        traces=str(traces / "heldout.npz"),
    )
    with pytest.raises(SpecGymError, match="counterfactual baseline prices every size's time"):
        ablations.ResidualSize(env, counterfactual=True)
    with pytest.raises(SpecGymError, match="radius must be >= 1"):
        ablations.ResidualSize(env, radius=0)
