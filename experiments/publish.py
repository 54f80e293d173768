"""Ship a finished co-adaptive DraftVerify run as a published policy (``envs/published.py``).

    python -m experiments.publish runs/draft-verify__coadaptive__0__... --name draft-verify-v1

Copies the run's final depth and size policies into ``envs/policies/NAME/`` with ``policy.json``
(the settings they were trained with) and ``README.md``, the card: the training command, seed,
steps per stage, and the held-out figures of the run's ``evaluation.json``. The folder is written
whole or not at all.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from envs.pairs.replay_assets import BUNDLED_NAME, REPLAY_ASSETS, bundled_profile
from envs.published import MANIFEST, POLICIES, ROLE_FILES
from envs.specdec.errors import SpecGymError
from envs.specdec.files import staged_dir
from experiments.cli import CommandParser, run_main

# run-specific env settings that name files of the training machine; the card says where they came from
RUN_ONLY = ("traces", "partner", "role", "split", "device")


def read_run(run_dir: Path) -> tuple[dict, dict, dict]:
    """A finished co-adaptive run's ``run.json``, ``results.json`` and ``evaluation.json``."""
    files = {name: run_dir / f"{name}.json" for name in ("run", "results", "evaluation")}
    missing = [str(path) for path in files.values() if not path.is_file()]
    if missing:
        raise SpecGymError(
            f"{run_dir} is not a finished, evaluated run (no {', '.join(missing)}); pass a run directory of "
            "python -m experiments.train --env draft-verify"
        )
    run, results, evaluation = (json.loads(path.read_text()) for path in files.values())
    if results.get("env") != "draft-verify" or set(results.get("policies", {})) != set(ROLE_FILES):
        raise SpecGymError(f"{run_dir} holds no co-adaptive DraftVerify pair; pass a run of --env draft-verify")
    return run, results, evaluation


def figures(evaluation: dict) -> dict[str, Any]:
    """The held-out headline: the learned pair against the best static k, the best rule pair, the oracle."""
    policies = evaluation["policies"]
    best_static = f"static_k{evaluation['best_static_k']}"
    return {
        "traces": Path(evaluation["traces"]).name,
        "n_prompts": evaluation["n_prompts"],
        "device": evaluation["device"],
        "cost_model": Path(str(evaluation["cost_model"])).name,
        "learned_tokens_per_s": policies["learned"]["tokens_per_s"],
        "best_static_k": evaluation["best_static_k"],
        "best_static_tokens_per_s": policies[best_static]["tokens_per_s"],
        "best_rule": evaluation["best_rule"],
        "best_rule_tokens_per_s": policies[evaluation["best_rule"]]["tokens_per_s"],
        "oracle_tokens_per_s": policies["oracle"]["tokens_per_s"],
        "learned_over_best_static": evaluation["learned_over_best_static"],
        "learned_over_best_rule": evaluation["learned_over_best_rule"],
        "learned_fraction_of_oracle": policies["learned"]["fraction_of_oracle"],
    }


def card(name: str, data: dict[str, Any]) -> str:
    f = data["heldout"]
    stages = "\n".join(
        f"| {s['round']} | {s['role']} | {s['timesteps_trained']:,} | {s['seconds']:.0f} |" for s in data["stages"]
    )
    kwargs = ", ".join(f"{k}={v!r}" for k, v in data["env_kwargs"].items())
    # the observation layout and cost family a partner must be given where they differ from the env's default
    extra = "".join(
        f', {k}="{data["env_kwargs"][k]}"'
        for k in ("cost_features", "cost_family")
        if data["env_kwargs"].get(k) not in (None, "ratios")
    )
    return f"""# Published policy `{name}`

A co-adaptive DraftVerify pair (LTD): `draft.zip` decides when to stop drafting, `verify.zip` how
many of the width-{data["env_kwargs"]["width"]} tree's nodes to verify. Use it by name:
`python -m experiments.evaluate --env draft-verify --policy {name} ...`, or as the partner of the
role you train: `gym.make("SpecGym/DraftVerify-v1", partner="{name}"{extra})` (the depth env gets its size
policy). Made by `python -m experiments.publish RUN_DIR --name {name}`.

## Training

- Command: `{data["command"]}`
- Seed {data["seed"]}; pair `{data["pair"]}`; {data["train_seconds"] / 60:.1f} min of training on {f["device"]}.
- Env settings: {kwargs}

| round | role | steps | seconds |
|---|---|---|---|
{stages}

## Held-out figures (the run's own evaluation, replay)

{f["n_prompts"]} held-out prompts (`{f["traces"]}`), cost model `{f["cost_model"]}`:

| policy | tokens/s |
|---|---|
| learned pair | {f["learned_tokens_per_s"]:.1f} |
| best static k (k={f["best_static_k"]}) | {f["best_static_tokens_per_s"]:.1f} |
| best rule pair (`{f["best_rule"]}`) | {f["best_rule_tokens_per_s"]:.1f} |
| oracle | {f["oracle_tokens_per_s"]:.1f} |

Learned / best static k {f["learned_over_best_static"]:.3f}; learned / best rule pair
{f["learned_over_best_rule"]:.3f}; {100 * f["learned_fraction_of_oracle"]:.1f}% of the oracle. One run, one seed.
"""


def publish(run_dir: Path, name: str, out: Path = POLICIES, force: bool = False) -> Path:
    """Write ``out/name`` from ``run_dir``; returns the folder."""
    run, results, evaluation = read_run(run_dir)
    target = out / name
    if target.exists() and not force:
        raise SpecGymError(f"{target} exists; pass --force to replace it")
    # every stage's settings in one: each role's own (the depth role's depth_action, the size role's
    # size_action), a later stage's winning where they share a key
    merged = {k: v for stage in results["stages"] for k, v in stage["env_kwargs"].items()}
    kwargs = {k: v for k, v in merged.items() if k not in RUN_ONLY}
    if merged["pair"] in REPLAY_ASSETS and Path(str(merged["cost_model"])) == bundled_profile(merged["pair"]):
        kwargs["cost_model"] = BUNDLED_NAME  # the shipped profile, wherever the repository lies
    data = {
        "name": name,
        "pair": results["pair"],
        "env": "draft-verify",
        "env_kwargs": kwargs,
        "seed": results["seed"],
        "command": " ".join(["python -m experiments.train", *run["argv"]]),
        "stages": [{k: s[k] for k in ("round", "role", "timesteps_trained", "seconds")} for s in results["stages"]],
        "train_seconds": results["train_seconds"],
        "heldout": figures(evaluation),
        "run": run_dir.name,
    }
    with staged_dir(target) as tmp:
        for role, file in ROLE_FILES.items():
            shutil.copyfile(results["policies"][role], tmp / file)
        (tmp / MANIFEST).write_text(json.dumps(data, indent=2) + "\n")
        (tmp / "README.md").write_text(card(name, data))
    return target


def main(argv: list[str] | None = None) -> None:
    p = CommandParser(
        prog="python -m experiments.publish", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("run_dir", type=Path, help="a finished python -m experiments.train --env draft-verify run")
    p.add_argument("--name", required=True, help="the policy's name (letters, digits, '-')")
    p.add_argument("--out", type=Path, default=POLICIES, help=f"where published policies live (default {POLICIES})")
    p.add_argument("--force", action="store_true", help="replace a published policy of that name")
    args = p.parse_args(argv)
    if not args.name.replace("-", "").isalnum():
        raise SpecGymError(f"--name {args.name!r}: use letters, digits and '-'")
    print(f"published {publish(args.run_dir, args.name, args.out, args.force)}")


if __name__ == "__main__":
    run_main(main)
