"""Ablations of DraftVerify's PPO learners: ideas for beating the rules, measured so that the
claims about them in docs/findings/draft_verify.md can be re-run.

    python -m experiments.ablations residual-size --pair smollm2-135m --seeds 0 1 --out FILE.json
    python -m experiments.ablations generation-stats --pair smollm2-135m --seeds 0 1 --out FILE.json

Each trains one role alone with MaskablePPO (``experiments/configs/draft_verify.yaml``'s settings
for that role and pair; ``--timesteps`` steps) on the pair's train trace with a rule as its
partner, then scores the pair (the learned role and the partner) on the held-out trace under the
cost model, as a fraction of the oracle, beside the pair of rules (``reference``):

- ``residual-size`` (verify role; depth partner ``--depth-rule``, default ``confidence-0.6``):
  ``plain``: the env's own size action; ``residual``: the action is an offset in -R..R around the
  ``expected`` rule's size and the rule's size is appended to the observation, so the policy
  starts at the rule and learns corrections (``departs_from_rule``: the share of held-out
  decisions where it does not keep the rule's size); ``residual_counterfactual``: the same as a
  contextual bandit (gamma 0: each size judged by its own cycle), each reward less the mean
  reward over every size the cycle could have verified (replay knows every size's outcome), a
  baseline that removes the cycle's luck. Under gamma > 0 a per-step baseline would reshape the
  return (it depends on the state, and the size decides how many cycles follow), so the
  variant trains myopically.
  Reference: ``{depth rule}+expected``.
- ``generation-stats`` (draft role; size partner ``expected``): ``plain``; ``generation_stats``:
  the observation gains the generation's mean accepted length, its acceptance ratio (accepted /
  drafted), an exponential average of the accepted length and the cycles so far, so that the
  depth policy could adapt to each prompt (a rule with its threshold picked per prompt in
  hindsight is worth a few points of the oracle: ``benchmark headroom``'s ``by_prompt``).
  Reference: ``{depth rule}+expected``.

The wrappers and their policy adapters compute the same features, so the scores are what the
trained policy does in the env.
"""

from __future__ import annotations

import argparse
import functools
import json
from datetime import datetime, timezone
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib import MaskablePPO
from stable_baselines3.common.env_util import make_vec_env

from envs.partners import SB3Policy, make_policy
from envs.specdec.cost import make_cost_model
from envs.specdec.cycles import CycleResult, CycleSource
from envs.specdec.errors import SpecGymError
from envs.specdec.replay import TraceReplay
from envs.specdec.schedules import Composite, ExpectedSize, Policy, tokens_per_s
from envs.specdec.trace import Trace
from experiments.artifacts import default_cost_model, default_traces
from experiments.cli import CommandParser, positive_int, run_main
from experiments.training.config import CONFIG_DIR, load_config, split
from experiments.training.ppo import _make

ABLATIONS = {
    "residual-size": ("verify", ("plain", "residual", "residual_counterfactual")),
    "generation-stats": ("draft", ("plain", "generation_stats")),
}
PPO_OVERRIDES = {"residual_counterfactual": {"gamma": 0.0}}  # the config's settings a variant changes


# -- residual-size ------------------------------------------------------------------------------
class ResidualSize(gym.Wrapper):
    """Verify role: action ``a`` verifies the ``expected`` rule's size + ``a - radius`` nodes."""

    def __init__(self, env: gym.Env, radius: int = 3, counterfactual: bool = False):
        super().__init__(env)
        if radius < 1:
            raise SpecGymError(f"radius must be >= 1 (0 would be the rule itself), got {radius}")
        rate = env.unwrapped.rate
        if counterfactual and not (env.unwrapped.reward_kind == "net_tokens" and isinstance(rate, int | float)):
            raise SpecGymError(
                "the counterfactual baseline prices every size's time: it needs reward='net_tokens' "
                "with a rate (a number or 'best_static')"
            )
        self.radius, self.counterfactual, self.rule_n = radius, counterfactual, 0
        box = env.observation_space
        self.observation_space = spaces.Box(
            np.append(box.low, 0.0).astype(np.float32), np.append(box.high, 1.0).astype(np.float32)
        )
        self.action_space = spaces.Discrete(2 * radius + 1)

    def _observe(self, obs: np.ndarray) -> np.ndarray:
        src = self.env.unwrapped.source
        self.rule_n = 0 if src.done else ExpectedSize().verify_size(src)
        return residual_observation(obs, self.rule_n, src.n_slots)

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(**kwargs)
        return self._observe(obs), info

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        env = self.env.unwrapped
        src = env.source
        baseline = 0.0
        if self.counterfactual:  # every size's net tokens this cycle, in hindsight
            baseline = float(np.mean(src.new_tokens_by_size() - env.rate * src.cycle_times()))
        obs, reward, terminated, truncated, info = self.env.step(self.rule_n + int(action) - self.radius)
        return self._observe(obs), reward - baseline, terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        return residual_mask(self.rule_n, self.env.unwrapped.source.n_nodes, self.radius)


def residual_observation(obs: np.ndarray, rule_n: int, n_slots: int) -> np.ndarray:
    return np.append(obs, rule_n / n_slots).astype(np.float32)


def residual_mask(rule_n: int, n_nodes: int, radius: int) -> np.ndarray:
    """Offsets that land on a valid size (0..n_nodes); the zero offset always is one."""
    sizes = rule_n + np.arange(-radius, radius + 1)
    return (sizes >= 0) & (sizes <= n_nodes)


class LearnedResidual(Policy):
    """A model trained in ``ResidualSize`` as a size policy."""

    name = "learned_residual"

    def __init__(self, model: MaskablePPO, radius: int):
        self.model, self.radius = model, radius
        self.decisions = self.changed = 0  # how often it departs from the rule

    def verify_size(self, source: CycleSource) -> int:
        rule_n = ExpectedSize().verify_size(source)
        obs = residual_observation(source.observation(), rule_n, source.n_slots)
        mask = residual_mask(rule_n, source.n_nodes, self.radius)
        action, _ = self.model.predict(obs, action_masks=mask, deterministic=True)
        self.decisions, self.changed = self.decisions + 1, self.changed + (int(action) != self.radius)
        return rule_n + int(action) - self.radius


# -- generation-stats ---------------------------------------------------------------------------
class GenerationStats:
    """The generation's acceptance so far, as 4 features in [-1, 1]: mean accepted length / D,
    accepted / drafted, a moving average of the accepted length / D (each -1 before the first
    cycle), cycles so far / 32 (capped at 1)."""

    def __init__(self, max_depth: int, decay: float = 0.7):
        self.max_depth, self.decay = max_depth, decay
        self.reset()

    def reset(self) -> None:
        self.cycles, self.accepted, self.drafted, self.ema = 0, 0, 0, 0.0

    def update(self, accepted: int, depth: int) -> None:
        self.ema = accepted if self.cycles == 0 else self.decay * self.ema + (1 - self.decay) * accepted
        self.cycles, self.accepted, self.drafted = self.cycles + 1, self.accepted + accepted, self.drafted + depth

    def features(self) -> np.ndarray:
        if self.cycles == 0:
            return np.array([-1.0, -1.0, -1.0, 0.0], np.float32)
        return np.array(
            [
                self.accepted / self.cycles / self.max_depth,
                self.accepted / self.drafted,
                self.ema / self.max_depth,
                min(self.cycles / 32, 1.0),
            ],
            np.float32,
        )


class GenerationStatsObs(gym.Wrapper):
    """Draft role with ``GenerationStats`` appended to the observation."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.stats = GenerationStats(env.unwrapped.source.max_depth)
        box, n = env.observation_space, len(self.stats.features())
        self.observation_space = spaces.Box(
            np.append(box.low, -np.ones(n)).astype(np.float32), np.append(box.high, np.ones(n)).astype(np.float32)
        )

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(**kwargs)
        self.stats.reset()
        return np.append(obs, self.stats.features()).astype(np.float32), info

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if "accepted_len" in info:  # a cycle ended
            self.stats.update(info["accepted_len"], info["depth"])
        return np.append(obs, self.stats.features()).astype(np.float32), reward, terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        return self.env.unwrapped.action_masks()


class LearnedWithStats(Policy):
    """A model trained in ``GenerationStatsObs`` as a depth policy."""

    name = "learned_generation_stats"

    def __init__(self, model: MaskablePPO, max_depth: int):
        self.model, self.stats = model, GenerationStats(max_depth)

    def reset(self) -> None:
        self.stats.reset()

    def observe(self, result: CycleResult) -> None:
        self.stats.update(result.accepted_len, result.depth)

    def keep_drafting(self, source: CycleSource) -> bool:
        obs = np.append(source.observation(), self.stats.features()).astype(np.float32)
        action, _ = self.model.predict(obs, action_masks=source.action_mask("draft"), deterministic=True)
        return int(action) == 0


# -- running ------------------------------------------------------------------------------------
def role_config(args: argparse.Namespace) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(env id, PPO kwargs, run settings) of the ablation's role, with ``--timesteps`` applied."""
    role_id = f"SpecGym/DraftVerify-{ABLATIONS[args.ablation][0].capitalize()}-v0"
    ppo_kwargs, run = split(load_config(args.config, role_id, args.pair))
    run["n_timesteps"] = args.timesteps or int(run.get("n_timesteps", 10_000))
    return role_id, ppo_kwargs, run


def train_variant(
    args: argparse.Namespace,
    config: tuple[str, dict[str, Any], dict[str, Any]],
    variant: str,
    seed: int,
    cost: str,
    train_traces: str,
) -> Policy:
    """Train one variant's role (``config``: ``role_config``'s); returns the learned role as a policy."""
    role = ABLATIONS[args.ablation][0]
    role_id, ppo_kwargs, run = config
    env_kwargs = {
        **run["env_kwargs"],
        "pair": args.pair,
        "backend": "replay",
        "cost_model": cost,
        "width": args.width,
        "max_depth": args.max_depth,
        "split": "train",
        "traces": train_traces,
        "partner": "expected" if role == "draft" else args.depth_rule,
    }
    wrapper, wrapper_kwargs = {
        "plain": (None, None),
        "residual": (ResidualSize, {"radius": args.radius}),
        "residual_counterfactual": (ResidualSize, {"radius": args.radius, "counterfactual": True}),
        "generation_stats": (GenerationStatsObs, {}),
    }[variant]
    venv = make_vec_env(
        functools.partial(_make, role_id),
        n_envs=int(run.get("n_envs", 1)),
        seed=seed,
        env_kwargs=env_kwargs,
        wrapper_class=wrapper,
        wrapper_kwargs=wrapper_kwargs,
    )
    ppo_kwargs = {"policy": "MlpPolicy", **ppo_kwargs, **PPO_OVERRIDES.get(variant, {})}
    model = MaskablePPO(env=venv, seed=seed, verbose=0, **ppo_kwargs)
    model.learn(total_timesteps=run["n_timesteps"])
    venv.close()
    if variant == "generation_stats":
        return LearnedWithStats(model, args.max_depth)
    if variant.startswith("residual"):
        return LearnedResidual(model, args.radius)
    return SB3Policy(model, role)


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.ablation not in ABLATIONS:
        raise SpecGymError(f"unknown ablation {args.ablation!r}; choose one of {', '.join(ABLATIONS)}")
    torch.set_num_threads(args.threads)
    role, variants = ABLATIONS[args.ablation]
    cost = default_cost_model(args.pair) if args.cost_model == "auto" else args.cost_model
    train_traces = str(args.train_traces or default_traces(args.pair, "train", args.width, args.max_depth))
    traces = str(args.traces or default_traces(args.pair, "heldout", args.width, args.max_depth))
    heldout = TraceReplay(Trace.load(traces), cost=make_cost_model(cost), width=args.width, max_depth=args.max_depth)
    oracle = tokens_per_s(make_policy("oracle", source=heldout), heldout)
    config = role_config(args)  # read once for every variant and seed
    rule_pair = f"{args.depth_rule}+expected"
    reference = tokens_per_s(make_policy(rule_pair), heldout)
    results: dict[str, dict[str, list[float]]] = {}
    for variant in variants:
        scores, changed = [], []
        for seed in args.seeds:
            learned = train_variant(args, config, variant, seed, cost, train_traces)
            pair = (
                Composite(make_policy(args.depth_rule), learned)
                if role == "verify"
                else Composite(learned, ExpectedSize())
            )
            scores.append(tokens_per_s(pair, heldout))
            if isinstance(learned, LearnedResidual):
                changed.append(learned.changed / max(learned.decisions, 1))
            print(
                f"{args.ablation} {variant} seed {seed}: {scores[-1]:.2f} tok/s ({scores[-1] / oracle:.1%} of the "
                f"oracle; {rule_pair} {reference / oracle:.1%})",
                flush=True,
            )
        results[variant] = {
            "seeds": list(args.seeds),
            "tokens_per_s": scores,
            "fraction_of_oracle": [s / oracle for s in scores],
            "ppo_overrides": PPO_OVERRIDES.get(variant, {}),
        }
        if changed:  # the held-out decisions where the learned size is not the rule's
            results[variant]["departs_from_rule"] = changed
    info = heldout.trace.meta.get("pair_info", {})
    return {
        "benchmark": "ablation",
        "ablation": args.ablation,
        "role": role,
        "pair": args.pair,
        "device": info.get("device"),
        "cost_model": cost,
        "width": args.width,
        "max_depth": args.max_depth,
        "timesteps": config[2]["n_timesteps"],
        "radius": args.radius if args.ablation == "residual-size" else None,
        "traces": traces,
        "train_traces": train_traces,
        "n_prompts": heldout.n_prompts,
        "oracle_tokens_per_s": oracle,
        "reference": {"policy": rule_pair, "tokens_per_s": reference, "fraction_of_oracle": reference / oracle},
        "variants": results,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def build_parser() -> argparse.ArgumentParser:
    p = CommandParser(
        prog="python -m experiments.ablations",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("ablation", help=" | ".join(ABLATIONS))
    p.add_argument("--pair", default="smollm2-135m")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--timesteps", type=positive_int, help="PPO steps per variant and seed (default: the config's)")
    p.add_argument("--depth-rule", default="confidence-0.6", help="the depth rule (partner and reference)")
    p.add_argument("--radius", type=positive_int, default=3, help="residual-size: offsets -R..R around the rule")
    p.add_argument("--width", type=int, default=4)
    p.add_argument("--max-depth", type=int, default=8)
    p.add_argument("--cost-model", default="auto", help="auto (as train's) | analytic | profile .json")
    p.add_argument("--traces", help="held-out trace .npz (default: the pair's, recorded on first use)")
    p.add_argument("--train-traces", help="training trace .npz (default: the pair's)")
    p.add_argument("--config", default=str(CONFIG_DIR / "draft_verify.yaml"))
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("--out", help="write the results JSON here")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    result = run(args)
    if args.out:
        with open(args.out, "w") as f:
            f.write(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    run_main(main)
