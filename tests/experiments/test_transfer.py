"""--cost-family in train and the transfer benchmark, end to end on tiny-random replay traces (small budgets)."""

from __future__ import annotations

import json

import pytest

from experiments import benchmark, report, train

# whole transfer benchmarks (PPO training inside): once per CI run (.ci/run), on the newest transformers
pytestmark = pytest.mark.once

# one short PPO rollout per stage
CONFIG = """
default:
  n_timesteps: 64
  n_envs: 1
  n_steps: 64
  batch_size: 32
  n_epochs: 1
  eval_freq: 100000
  n_eval_episodes: 1
  env_kwargs: {reward: net_tokens, credit: token, rate: best_static}
SpecGym/DraftVerify-Draft-v0: {gamma: 0.9}
SpecGym/DraftVerify-Verify-v0: {gamma: 0.9}
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "small.yaml"
    path.write_text(CONFIG)
    return str(path)


def test_train_stores_the_cost_family_and_trains_under_it(traces, config, tmp_path):
    argv = ["--env", "draft-verify", "--pair", "tiny-random", "--traces", str(traces / "train.npz")]
    argv += ["--eval-traces", str(traces / "heldout.npz"), "--rounds", "1", "--config", config]
    argv += ["--runs-dir", str(tmp_path), "--wandb-mode", "disabled", "--no-progress", "--cost-family", "gpu"]
    (row,) = train.main(argv)
    run = json.loads((tmp_path / row["run_dir"].split("/")[-1] / "run.json").read_text())
    assert run["args"]["cost_family"] == "gpu"
    results = json.loads((tmp_path / row["run_dir"].split("/")[-1] / "results.json").read_text())
    kwargs = results["stages"][-1]["env_kwargs"]
    assert kwargs["cost_family"] == "gpu" and kwargs["cost_features"] == "profile"
    # the held-out evaluation read the profile layout the policies were trained with
    evaluation = json.loads((tmp_path / row["run_dir"].split("/")[-1] / "evaluation.json").read_text())
    assert evaluation["policies"]["learned"]["tokens_per_s"] > 0


def test_transfer_benchmark_reports_every_profile_and_policy(traces, config, tmp_path):
    out = tmp_path / "transfer.json"
    benchmark.main(
        [
            "transfer",
            "--pair",
            "tiny-random",
            "--traces",
            str(traces / "heldout.npz"),
            "--train-traces",
            str(traces / "train.npz"),
            "--cost-model",
            "analytic",
            "--rounds",
            "1",
            "--timesteps",
            "64",
            "--config",
            config,
            "--runs-dir",
            str(tmp_path / "runs"),
            "--out",
            str(out),
        ]
    )
    result = json.loads(out.read_text())
    profiles = result["profiles"]
    assert sum(p["unseen"] for p in profiles.values()) >= 2
    assert set(result["policies"]) == set(profiles)
    for rows in result["policies"].values():
        assert {"randomized", "specialist", "best_static", "best_rule", "oracle"} <= set(rows)
        for row in rows.values():
            assert row["tokens_per_s"] > 0 and 0 < row["fraction_of_oracle"] <= 1 + 1e-9
    for key in ("randomized_over_specialist", "randomized_over_best_static", "randomized_over_best_rule"):
        assert set(result[key]) == set(profiles)
        assert result[f"{key}_min"] == min(result[key].values())
    assert result["seeds"] == [0] and result["timesteps_per_stage"]["randomized"] > 0
    assert (tmp_path / "transfer.png").is_file()
    assert all((tmp_path / "transfer_profiles" / f"{name}.json").is_file() for name in profiles)
    assert "DraftVerify transfer" in report.render(tmp_path)  # the results page reads this JSON
    # the profiles differ: the oracle's tokens/s is not one number
    assert len({round(rows["oracle"]["tokens_per_s"], 6) for rows in result["policies"].values()}) == len(profiles)
