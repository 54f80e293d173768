"""evaluate --env draft-verify: per-category results, action histograms and departures, their plots
and W&B logs, on tiny-random (an untrained depth policy: what is scored does not matter here)."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

from envs.specdec import SpecGymError
from experiments import evaluate, report
from experiments.workloads import trace_categories

CATEGORIES = ["qa", "qa", "translation", "rag", "translation", "qa"]


@pytest.fixture(scope="module")
def policy(traces, tmp_path_factory):
    """A depth-policy .zip for tiny-random's width-4, depth-8 trees, saved untrained."""
    from stable_baselines3 import PPO

    env = gym.make(
        "SpecGym/DraftVerify-Draft-v0",
        pair="tiny-random",
        backend="replay",
        traces=str(traces / "train.npz"),
        split="train",
        cost_model="analytic",
        width=4,
        max_depth=8,
    )
    path = tmp_path_factory.mktemp("policy") / "draft.zip"
    PPO("MlpPolicy", env, n_steps=8, batch_size=8, seed=0, device="cpu").save(path)
    return path


def run(policy, prompts, out, *extra: str) -> dict:
    evaluate.main(
        [
            "--policy",
            str(policy),
            "--pair",
            "tiny-random",
            "--prompts",
            str(prompts),
            "--max-new-tokens",
            "12",
            "--cost-model",
            "analytic",
            "--threads",
            "1",
            "--no-live",
            "--out",
            str(out),
            *extra,
        ]
    )
    return json.loads(out.read_text())


def test_per_category_results_histograms_and_plots(policy, tmp_path):
    prompts = tmp_path / "specbench.jsonl"
    texts = [f"Question {i}: what comes after {i}?" for i in range(len(CATEGORIES))]
    texts[3] = "Context: " + "the river runs past the mill. " * 12 + "Question: what runs past the mill?"  # ~400 bytes
    prompts.write_text(
        "".join(
            json.dumps({"question_id": i, "category": c, "turns": [t]}) + "\n"
            for i, (c, t) in enumerate(zip(CATEGORIES, texts, strict=True))
        )
    )
    data = run(policy, prompts, tmp_path / "eval.json")
    assert list(data["per_category"]) == ["qa", "translation", "rag"]  # in order of first appearance
    assert {c: f["n_prompts"] for c, f in data["categories"].items()} == {"qa": 3, "translation": 2, "rag": 1}
    assert data["longest_context"] > 400 and data["wall_seconds"] > 0 and data["record_seconds"] > 0
    for category, pol in data["per_category"].items():
        assert set(pol) == set(data["policies"]), category  # every policy, the oracle and target-only
        assert pol["oracle"]["fraction_of_oracle"] == pytest.approx(1.0)
        assert all(row["fraction_of_oracle"] <= 1 + 1e-9 for row in pol.values())
        facts = data["categories"][category]
        rate = {name: row["tokens_per_s"] for name, row in pol.items()}
        assert facts["learned_over_best_static"] == pytest.approx(
            rate["learned"] / rate[f"static_k{facts['best_static_k']}"]
        )
    # a category of one prompt scores what that prompt alone scores
    (alone,) = [i for i, c in enumerate(CATEGORIES) if c == "rag"]
    assert data["per_category"]["rag"]["learned"]["tokens_per_s"] == pytest.approx(
        data["policies"]["learned"]["per_prompt_tokens_per_s"][alone]
    )
    for name in ("learned", "confidence", "specdec+++expected", "static_k3", "oracle"):
        actions = data["policies"][name]["actions"]
        assert sum(actions["depth"].values()) == sum(actions["verify_size"].values()) > 0, name
    assert set(data["policies"]["static_k3"]["actions"]["depth"]) <= {"1", "2", "3"}  # capped at the output's end
    departure = data["learned_departure_from_best_rule"]
    assert data["learned_departure_from_rules"][data["best_rule"]] == departure
    assert all(0.0 <= departure[k] <= 1.0 for k in ("draft", "verify", "all")) and departure["decisions"] > 0
    for png in ("eval_actions.png", "eval_categories.png"):
        assert (tmp_path / png).stat().st_size > 0, png
    page = report.render(tmp_path)  # the results page reads this JSON: a row per category and one for all
    assert "DraftVerify by category" in page and "| tiny-random | specbench.jsonl | rag | 1 |" in page
    # the recorded trace is kept beside the JSON: another scoring on it records nothing and agrees
    kept = tmp_path / "eval.trace.npz"
    assert data["traces"] == str(kept) and kept.is_file()
    evaluate.main(
        ["--policy", str(policy), "--traces", str(kept), "--cost-model", "analytic", "--threads", "1"]
        + ["--no-live", "--out", str(tmp_path / "again.json")]
    )
    again = json.loads((tmp_path / "again.json").read_text())
    assert "record_seconds" not in again and again["per_category"] == data["per_category"]


def test_a_file_without_categories_reports_the_whole_only(policy, tmp_path):
    prompts = tmp_path / "plain.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"Say {i}."}) + "\n" for i in range(2)))
    data = run(policy, prompts, tmp_path / "eval.json")
    assert "per_category" not in data and "categories" not in data and data["n_prompts"] == 2
    assert (tmp_path / "eval_actions.png").is_file() and not (tmp_path / "eval_categories.png").exists()


def test_a_bad_category_or_a_prompt_past_the_context_is_one_clear_error(policy, tmp_path):
    prompts = tmp_path / "bad.jsonl"
    prompts.write_text(
        json.dumps({"category": "qa", "turns": ["a"]}) + "\n" + json.dumps({"category": 7, "turns": ["b"]}) + "\n"
    )
    with pytest.raises(SpecGymError, match=r"bad.jsonl:2: 'category' must be a non-empty string, got 7"):
        run(policy, prompts, tmp_path / "eval.json")
    prompts.write_text(json.dumps({"category": "rag", "turns": ["long context " * 60]}) + "\n")  # 780 bytes > 512
    with pytest.raises(
        SpecGymError, match=r"prompt 'long context long.*is \d+ tokens, and pair 'tiny-random' takes 512"
    ):
        run(policy, prompts, tmp_path / "eval.json")
    with pytest.raises(SpecGymError, match="one non-empty string per prompt \\(3\\)"):
        trace_categories({"categories": ["qa", "qa"]}, 3)


def test_the_evaluation_logs_to_a_disabled_wandb_run(policy, tmp_path):
    import wandb

    from experiments.training.tracking import draft_verify_logs

    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"category": c, "prompt": f"Name {c}."}) + "\n" for c in ("qa", "rag")))
    logs = draft_verify_logs(run(policy, prompts, tmp_path / "eval.json"))
    assert isinstance(logs["actions/learned/depth"], wandb.Histogram)
    assert isinstance(logs["actions/table"], wandb.Table)
    assert {"eval/category/qa/learned_over_best_static", "eval/learned_departure_from_best_rule/all"} <= set(logs)
    run_ = wandb.init(mode="disabled", dir=str(tmp_path))
    try:
        run_.log(logs)
    finally:
        run_.finish()
