"""python -m experiments.train with no --env (both environments, trained, evaluated, reported),
end to end on tiny-random with a tiny budget; then evaluate --env arbitration on its run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from experiments import evaluate, report


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    cmd = [
        sys.executable,
        "-m",
        "experiments.train",
        "--pair",
        "tiny-random",
        "--timesteps",
        "256",
        "--rounds",
        "1",
        "--n-envs",
        "1",
        "--eval-items",
        "4",
        "--runs-dir",
        str(runs),
        "--no-progress",
    ]
    env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "SPECGYM_DATA": str(tmp_path_factory.mktemp("data")),
    }
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "SpecGym results (held-out)" in proc.stdout
    return runs


@pytest.fixture(scope="module")
def trained(runs):
    (run,) = runs.glob("arbitration__ppo__0__*")
    return run


@pytest.mark.parametrize("env", ["draft-verify", "arbitration"])
def test_run_directories(runs, env):
    (run,) = runs.glob(f"{env}__*__0__*")
    results = json.loads((run / "results.json").read_text())
    assert {"policies", "stages", "headline", "evaluation", "plots", "train_seconds"} <= set(results)
    assert (run / "results.md").is_file() and (run / "evaluation.json").is_file()
    assert results["plots"] and all(p.endswith(".png") and os.path.isfile(p) for p in results["plots"])
    assert all(os.path.isfile(p) for p in results["policies"].values())
    assert results["stages"][0]["env_kwargs"]["split"] == "train"
    if env == "arbitration":  # by default the rules are tuned on the training record: no validation recording
        evaluation = json.loads((run / "evaluation.json").read_text())
        assert evaluation["rules_tuned_on"]["split"] == "train"
    assert list((run / "wandb").glob("offline-run-*/*.wandb")), "no offline W&B run written"
    (summary,) = runs.glob("summary__*.json")
    assert {r["env"] for r in json.loads(summary.read_text())["runs"]} == {"draft-verify", "arbitration"}


def test_evaluate_reports_every_policy(trained, tmp_path):
    out = tmp_path / "eval.json"
    evaluate.main(
        [
            "--env",
            "arbitration",
            "--policy",
            str(trained),
            "--pair",
            "tiny-random",
            "--n-items",
            "6",
            "--validation-items",
            "4",
            "--train-items",
            "8",
            "--max-new-tokens",
            "12",
            "--out",
            str(out),
        ]
    )
    data = json.loads(out.read_text())
    names = {"learned", "target_only", "always_draft", "random", "oracle", "exact_oracle", "entropy_gate", "judge"}
    assert names <= set(data["policies"])
    for row in data["policies"].values():
        assert {
            "accuracy",
            "accuracy_ci95",
            "n_items",
            "mean_accepted_length",
            "tokens_per_s",
            "draft_kept_fraction",
            "oracle_agreement",
        } <= set(row)
        lo, hi = row["accuracy_ci95"]
        assert 0.0 <= lo <= row["accuracy"] <= hi <= 1.0
    assert data["policies"]["target_only"]["draft_kept_fraction"] == 0.0
    assert data["policies"]["always_draft"]["draft_kept_fraction"] == 1.0
    assert data["policies"]["oracle"]["n_items"] == 6 and data["n_items"] == 6
    assert data["policies"]["oracle"]["oracle_agreement"] == 1.0
    assert 0.0 <= data["served_from_record"] <= 1.0  # a share of the walks' decisions
    assert data["best_rule"]["policy"] in data["policies"] and data["rules_tuned_on"]["split"] == "validation"
    best = data["policies"][data["best_rule"]["policy"]]
    assert best["tuning_curve"][best["rule"]] == best["tuning_accuracy"] == max(best["tuning_curve"].values())
    decisive = data["decisive_on_target_only_path"]["heldout"]
    assert decisive["draft_better"] + decisive["draft_worse"] + decisive["unknown"] <= decisive["mismatches"]
    assert decisive["mismatches"] == data["policies"]["target_only"]["mismatches_per_item"] * data["n_items"]
    diff = data["paired_diff_vs_target_only"]
    assert diff["ci95"][0] <= diff["mean"] <= diff["ci95"][1]
    assert {"pair", "task", "device"} <= set(data)


def test_report_summarises_runs(runs, tmp_path):
    out = tmp_path / "results" / "seeds.json"
    out.parent.mkdir()
    report.main(["--summarise", *map(str, sorted(runs.glob("*__0__*"))), "--tag", "a variant", "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["benchmark"] == "train-summary" and set(data["summary"]) == {"draft-verify", "arbitration"}
    assert data["summary"]["arbitration"]["learned_accuracy"]["sd"] == 0.0  # one seed
    table = report.render(out.parent)
    assert "**Training runs**" in table and "| arbitration | tiny-random (a variant) | 0 |" in table
