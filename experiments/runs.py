"""Reading a finished training run: its policies and the env settings it trained with (evaluate,
the benchmarks and the ablations score runs through these)."""

from __future__ import annotations

import json
from pathlib import Path

from envs.partners import SB3Policy, make_policy, published_pair
from envs.published import manifest
from envs.specdec import SpecGymError
from envs.specdec.schedules import Composite, Policy


def names_published(policy: str) -> bool:
    """``--policy`` is no file: a published policy's name (refused by :func:`manifest` when unknown)."""
    return not Path(policy).exists() and Path(policy).suffix != ".zip"


def learned_policy(path: str, verify: str | None) -> Policy:
    """A run directory (its trained depth and size policies), a published policy's name, or a
    depth-policy .zip."""
    p = Path(path)
    if names_published(path):
        return published_pair(path, label="learned")
    if p.is_dir():
        results = p / "results.json"
        if not results.is_file():
            raise SpecGymError(f"{p} has no results.json; pass a finished run directory or a policy .zip")
        run = json.loads(results.read_text())
        policies = run["policies"]
        if run.get("env", "draft-verify") != "draft-verify" or not (policies.get("draft") or policies.get("verify")):
            raise SpecGymError(
                f"{p} holds no DraftVerify policy (a run of --env {run.get('env')}); pass a run of "
                "--env draft-verify, or evaluate this one with --env arbitration"
            )
        depth = SB3Policy(policies["draft"], "draft") if policies.get("draft") else make_policy("static-4")
        size = SB3Policy(policies["verify"], "verify") if policies.get("verify") else Policy()
        return Composite(depth, size, "learned")
    return Composite(SB3Policy(p, "draft"), SB3Policy(verify, "verify") if verify else Policy(), "learned")


def cost_features(policy: Policy, max_depth: int, width: int) -> str:
    """The observation layout (DraftVerify's ``cost_features``) a learned policy reads at this tree
    shape; a rule's: ratios."""
    parts = [policy.depth, policy.size] if isinstance(policy, Composite) else [policy]
    return next((p.cost_features(max_depth, width) for p in parts if isinstance(p, SB3Policy)), "ratios")


def check_trace_pair(path: str, meta: dict, pair: str) -> None:
    """Refuse, naming the fix, a trace (``meta`` read from ``path``) recorded for another pair than ``--pair``."""
    recorded = meta.get("pair")
    if recorded != pair:
        raise SpecGymError(
            f"trace {path} was recorded for pair {recorded!r}, not {pair!r}; pass "
            f"--pair {recorded} or a trace of {pair}"
        )


def run_env_kwargs(policy: str) -> dict:
    """The env kwargs a run directory's (or a published policy's) policies were trained with (cost
    model, tree shape, pair); {} for a .zip."""
    if names_published(policy):
        return manifest(policy)["env_kwargs"]
    results = Path(policy) / "results.json"
    if not results.is_file():
        return {}
    return json.loads(results.read_text())["stages"][-1]["env_kwargs"]


def note_other_pair(policy: str, run_pair: str | None, pair: str) -> None:
    """Say so when a run's policies are scored on a pair they were not trained on."""
    if run_pair and run_pair != pair:
        print(
            f"note: {policy} was trained on pair {run_pair!r}; scoring it on {pair!r} (with {pair}'s cost "
            "model unless --cost-model says otherwise)"
        )
