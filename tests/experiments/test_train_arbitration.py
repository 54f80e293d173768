"""python -m experiments.train --env arbitration and its evaluation, end to end on tiny-random."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from experiments import evaluate


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    cmd = [sys.executable, "-m", "experiments.train", "--env", "arbitration", "--pair", "tiny-random",
           "--timesteps", "256", "--n-envs", "1", "--runs-dir", str(runs), "--no-progress"]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run,) = runs.iterdir()
    return run


def test_run_directory(trained):
    assert trained.name.startswith("arbitration__ppo__0__")
    results = json.loads((trained / "results.json").read_text())
    assert set(results["policies"]) == {"arbiter"}
    assert (trained / "arbiter.zip").is_file()
    assert results["stages"][0]["env_kwargs"]["split"] == "train"
    assert list((trained / "wandb").glob("offline-run-*")), "no offline W&B run written"


def test_evaluate_reports_every_policy(trained, tmp_path):
    out = tmp_path / "eval.json"
    evaluate.main(["--env", "arbitration", "--policy", str(trained), "--pair", "tiny-random", "--n-items", "6",
                   "--oracle-items", "2", "--max-new-tokens", "16", "--out", str(out)])  # fmt: skip
    data = json.loads(out.read_text())
    names = {"learned", "target_only", "always_draft", "random", "oracle"}
    assert names <= set(data["policies"])
    for row in data["policies"].values():
        assert {"accuracy", "accuracy_ci95", "n_items", "mean_accepted_length", "tokens_per_s",
                "draft_kept_fraction"} <= set(row)  # fmt: skip
        lo, hi = row["accuracy_ci95"]
        assert 0.0 <= lo <= row["accuracy"] <= hi <= 1.0
    assert data["policies"]["target_only"]["draft_kept_fraction"] == 0.0
    assert data["policies"]["always_draft"]["draft_kept_fraction"] == 1.0
    assert data["policies"]["oracle"]["n_items"] == 2 and data["n_items"] == 6
    diff = data["paired_diff_vs_target_only"]
    assert diff["ci95"][0] <= diff["mean"] <= diff["ci95"][1]
    assert {"pair", "task", "device"} <= set(data)
