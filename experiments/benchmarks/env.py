"""``env``: environment steps per second in one process, live engine or trace replay.

    python -m experiments.benchmark env --env draft-verify --backend replay|live --pair NAME --out FILE.json
    python -m experiments.benchmark env --env arbitration --backend replay|live --pair gsm
        [--traces FILE.npz] --out FILE.json

Steps the env made with ``gymnasium.make`` (the wrappers users get) under a random (masked)
or static policy (static-K: DraftVerify only); ``steps_per_s`` counts time inside ``env.step``
and ``env.reset`` only, ``loop_steps_per_s`` the whole loop with the policy's choice. Replay
without ``--traces`` records a trace (DraftVerify) or a branch record of ``--n-items`` items
(Arbitration) into a temporary directory first (its time is reported apart). Arbitration replay
also reports ``served_from_record``: the share of steps the record served without decoding a
missing branch on demand (1 - decoded_steps / replay_steps).
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import envs  # noqa: F401 - registers the ids
from envs.arbitration import ArbitrationEnv
from envs.arbitration.env import load_branches
from envs.arbitration.record import record_env
from envs.specdec import SpecGymError
from envs.specdec.cost import device_name
from envs.specdec.trace import Trace, record_trace
from envs.tasks import load_prompts
from envs.tasks.splits import SPLITS
from experiments import cli
from experiments.cli import add_pair_args, add_prompt_args, pair_from_args, positive_int

console = cli.console()
ENVS = {"draft-verify": "SpecGym/DraftVerify-v0", "arbitration": "SpecGym/Arbitration-v0"}
MAX_NEW = 128  # tokens per prompt when no trace is given
ARB_MAX_NEW = 64  # Arbitration: tokens per item when no record is given


def add_parser(sub: argparse._SubParsersAction) -> None:
    env = sub.add_parser("env", help="env steps/s (live engine or trace replay)")
    env.add_argument("--env", choices=sorted(ENVS), default="draft-verify")
    env.add_argument("--backend", choices=("replay", "live"), default="replay")
    add_pair_args(env, default="tiny-random")
    add_prompt_args(env, n=8, max_new=None, max_new_help=f"(default: the trace's with --traces, else {MAX_NEW})")
    env.add_argument("--role", choices=("draft", "verify", "joint"), default="draft")
    env.add_argument("--width", type=int, default=1)
    env.add_argument("--max-depth", type=int, default=8)
    env.add_argument("--cost-model", default="analytic", help="analytic | profile .json (| measured, live)")
    env.add_argument("--traces", help="replay: a recorded .npz (default: record one now)")
    env.add_argument("--policy", default="random", help="random (masked) | static-K")
    # the reward options change what a step computes (credit="token" looks up each draft step's outcome)
    env.add_argument("--reward", choices=("throughput", "net_tokens"), default="throughput")
    env.add_argument("--credit", choices=("cycle", "token"), default="cycle", help="token: replay + net_tokens")
    env.add_argument("--rate", type=_rate, default=None, help="net_tokens rate: tokens/s or best_static (replay)")
    arb = env.add_argument_group("arbitration (--env arbitration; a --traces record's own settings win)")
    arb.add_argument("--task", default="chain_sum", help="reasoning-gym task or GSM8K-format .jsonl")
    arb.add_argument("--split", choices=SPLITS, default="train", help="item seed split (default: train)")
    arb.add_argument("--n-items", type=positive_int, default=20, help="items (default: 20; with --traces: its)")
    arb.add_argument("--k", type=positive_int, default=4, help="drafted tokens per cycle (default: 4)")
    arb.add_argument("--speed-weight", type=float, default=0.0, help="weight of the speed term (default: 0)")
    arb.add_argument("--max-nodes", type=positive_int, default=4096, help="recording's node budget per item")
    env.add_argument("--steps", type=int, default=None, help="env steps (default: 50000 replay, 1000 live)")
    env.add_argument("--seed", type=int, default=0)
    env.add_argument("--out", help="write the results JSON here")
    env.set_defaults(run=run)


def _rate(text: str) -> float | str:
    return text if text == "best_static" else float(text)


def _chooser(policy: str, env: gym.Env, rng: np.random.Generator):
    """Action function: masked uniform random, or static-K: depth K, every node verified (in the
    verify role K is the partner's business, so it only means "verify every node")."""
    inner = env.unwrapped
    if policy == "random":

        def random_action() -> int:
            valid = np.flatnonzero(inner.action_masks())
            return int(valid[rng.integers(len(valid))])

        return random_action
    m = re.fullmatch(r"static-(\d+)", policy)
    if not m:
        raise SpecGymError(f"unknown benchmark policy {policy!r}; use random or static-K")
    if not hasattr(inner, "source"):
        raise SpecGymError(f"policy {policy!r} is for --env draft-verify; use --policy random")
    k, src = int(m.group(1)), inner.source
    if inner.role == "draft":
        return lambda: 0 if src.depth < k else 1
    if inner.role == "verify":
        return lambda: src.n_nodes
    table = [tuple(x) for x in inner.joint_table]
    return lambda: table.index((min(k, src.cap), min(k, src.cap) * src.width))


def _time_steps(env: gym.Env, args: argparse.Namespace, n_steps: int) -> tuple[int, float, float]:
    """Step ``env`` ``n_steps`` times under ``args.policy``: (episodes, seconds inside the env, loop seconds)."""
    choose = _chooser(args.policy, env, np.random.default_rng(args.seed))
    env.reset(seed=args.seed)
    env.step(choose())  # first step: the passive checker's one-off checks stay out of the timing
    env.reset(seed=args.seed)
    inside, episodes, done = 0.0, 0, False
    loop_start = time.perf_counter()
    for _ in range(n_steps):
        action = choose()
        t0 = time.perf_counter()
        _, _, done, _, _ = env.step(action)
        if done:
            env.reset()
            episodes += 1
        inside += time.perf_counter() - t0
    return episodes, inside, time.perf_counter() - loop_start


def run(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.env == "arbitration":
        return run_arbitration(args)
    n_steps = args.steps or (50_000 if args.backend == "replay" else 1_000)
    max_new_tokens = args.max_new_tokens
    if max_new_tokens is None and not (args.backend == "replay" and args.traces):
        max_new_tokens = MAX_NEW
    kwargs = dict(
        pair=args.pair,
        role=args.role,
        backend=args.backend,
        width=args.width,
        max_depth=args.max_depth,
        max_new_tokens=max_new_tokens,
        cost_model=args.cost_model,
        reward=args.reward,
        credit=args.credit,
        rate=args.rate,
    )
    record_s, tmp = None, None
    if args.backend == "replay":
        traces = args.traces
        if traces is None:
            pair = pair_from_args(args)
            tmp = tempfile.TemporaryDirectory()
            start = time.perf_counter()
            ids = [pair.encode(t) for t in load_prompts(args.prompts, args.n_prompts)]
            trace = record_trace(pair, ids, max_new_tokens=max_new_tokens, width=args.width, max_depth=args.max_depth)
            traces = str(trace.save(Path(tmp.name) / "trace.npz"))
            record_s = time.perf_counter() - start
        else:  # the steps of any recorded split time the same: replay the one the trace holds
            kwargs["split"] = Trace.load_meta(traces).get("split", "heldout")
        kwargs["traces"] = traces
        device = device_name(torch.device("cpu"))
    else:
        kwargs.update(prompts=args.prompts, n_prompts=args.n_prompts, device=args.device, dtype=args.dtype)
    with warnings.catch_warnings():  # v0's defaults on purpose: gymnasium calls it out of date since v1 exists
        warnings.filterwarnings("ignore", ".*SpecGym/DraftVerify-v0 is out of date", DeprecationWarning)
        env = gym.make(ENVS[args.env], **kwargs)
    if args.backend == "live":
        device = device_name(env.unwrapped.source.dec.pair.device)
    episodes, inside, loop_s = _time_steps(env, args, n_steps)
    if tmp is not None:
        tmp.cleanup()
    result = {
        "benchmark": "env",
        "env": ENVS[args.env],
        "backend": args.backend,
        "role": args.role,
        "pair": args.pair,
        "device": device,
        "width": args.width,
        "max_depth": args.max_depth,
        "cost_model": args.cost_model,
        "policy": args.policy,
        "reward": {"reward": args.reward, "credit": args.credit, "rate": args.rate},
        "n_steps": n_steps,
        "episodes": episodes,
        "steps_per_s": n_steps / inside,
        "loop_steps_per_s": n_steps / loop_s,
        "trace_record_seconds": record_s,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    console.print(
        f"{result['env']} {args.backend} ({args.role}, {args.policy}): {result['steps_per_s']:,.0f} steps/s "
        f"in env ({result['loop_steps_per_s']:,.0f} with the policy), {n_steps} steps, {episodes} episodes"
    )
    return result


def run_arbitration(args: argparse.Namespace) -> dict:
    """Arbitration steps/s: replay of a branch record (``--traces``, else one recorded now) or live decoding."""
    if args.policy != "random":
        raise SpecGymError(f"policy {args.policy!r} is for --env draft-verify; use --policy random")
    n_steps = args.steps or (50_000 if args.backend == "replay" else 1_000)
    kwargs = dict(
        pair=args.pair,
        task=args.task,
        split=args.split,
        n_items=args.n_items,
        k=args.k,
        max_new_tokens=args.max_new_tokens or ARB_MAX_NEW,
        speed_weight=args.speed_weight,
        backend=args.backend,
        device=args.device,
        dtype=args.dtype,
    )
    record_s, tmp = None, None
    if args.backend == "replay":
        traces = args.traces
        if traces is None:
            tmp = tempfile.TemporaryDirectory()
            start = time.perf_counter()
            live = ArbitrationEnv(**{**kwargs, "backend": "live"})
            traces = str(Path(tmp.name) / "branches.npz")
            record_env(live, traces, max_nodes=args.max_nodes, progress=False)
            record_s = time.perf_counter() - start
        meta = load_branches(str(traces)).meta  # the record's own settings (cached: the env reads it once)
        kwargs.update({key: meta[key] for key in ("pair", "task", "split", "k", "max_new_tokens", "n_items")})
        kwargs["traces"] = str(traces)
    env = gym.make(ENVS[args.env], **kwargs)
    inner = env.unwrapped
    device = device_name(torch.device("cpu") if args.backend == "replay" else inner.pair.device)
    episodes, inside, loop_s = _time_steps(env, args, n_steps)
    served = 1 - inner.decoded_steps / inner.replay_steps if args.backend == "replay" else None
    if tmp is not None:
        tmp.cleanup()
    result = {
        "benchmark": "env",
        "env": ENVS[args.env],
        "backend": args.backend,
        # the report's env table reads these DraftVerify columns: an arbiter drafts a chain of k
        "role": "arbiter",
        "pair": kwargs["pair"],
        "device": device,
        "width": 1,
        "max_depth": kwargs["k"],
        "cost_model": "none",
        "policy": args.policy,
        "reward": {"reward": "correctness", "credit": "episode", "rate": None},
        "task": kwargs["task"],
        "split": kwargs["split"],
        "n_items": kwargs["n_items"],
        "k": kwargs["k"],
        "max_new_tokens": kwargs["max_new_tokens"],
        "speed_weight": args.speed_weight,
        "traces": None if record_s is not None else kwargs.get("traces"),
        "n_steps": n_steps,
        "episodes": episodes,
        "steps_per_s": n_steps / inside,
        "loop_steps_per_s": n_steps / loop_s,
        "replay_steps": inner.replay_steps if args.backend == "replay" else None,
        "decoded_steps": inner.decoded_steps if args.backend == "replay" else None,
        "unreproduced_steps": inner.unreproduced_steps if args.backend == "replay" else None,
        "served_from_record": served,
        "trace_record_seconds": record_s,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    note = f", {served:.1%} served from the record" if served is not None else ""
    console.print(
        f"{result['env']} {args.backend} ({kwargs['pair']}, {kwargs['n_items']} items, {args.policy}): "
        f"{result['steps_per_s']:,.0f} steps/s in env ({result['loop_steps_per_s']:,.0f} with the policy), "
        f"{n_steps} steps, {episodes} episodes{note}"
    )
    return result
