"""python -m experiments.train and evaluate, end to end on tiny-random replay traces."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from experiments import benchmark, evaluate, report


def train_cmd(traces: Path, runs: Path, timesteps: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "experiments.train",
        "--env",
        "draft-verify",
        "--pair",
        "tiny-random",
        "--backend",
        "replay",
        "--traces",
        str(traces / "train.npz"),
        "--timesteps",
        str(timesteps),
        "--eval-traces",
        str(traces / "heldout.npz"),
        "--rounds",
        "1",
        "--n-envs",
        "2",
        "--runs-dir",
        str(runs),
        "--no-progress",
    ]


def run_dir_of(runs: Path) -> Path:
    (run,) = runs.iterdir()
    return run


@pytest.fixture(scope="module")
def trained(traces, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    proc = subprocess.run(train_cmd(traces, runs, 512), env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return run_dir_of(runs)


def test_run_directory(trained):
    assert trained.name.startswith("draft-verify__coadaptive__0__")
    for name in ("run.json", "results.json", "draft_round1.zip", "verify_round1.zip"):
        assert (trained / name).is_file(), name
    results = json.loads((trained / "results.json").read_text())
    assert set(results["policies"]) == {"draft", "verify"}
    assert [s["role"] for s in results["stages"]] == ["draft", "verify"]
    assert results["stages"][1]["env_kwargs"]["partner"] == results["policies"]["draft"]
    # round 1's depth policy learns beside the rule the size policy's action scales (the config's)
    assert results["stages"][0]["env_kwargs"]["partner"] == "expected"
    assert list((trained / "wandb").glob("offline-run-*")), "no offline W&B run written"
    # the held-out evaluation replays the tree shape the policies were trained on
    evaluation = json.loads((trained / "evaluation.json").read_text())
    shape = results["stages"][0]["env_kwargs"]
    assert (evaluation["width"], evaluation["max_depth"]) == (shape["width"], shape["max_depth"]) == (4, 8)


def test_train_refuses_swapped_trace_splits(traces):
    from envs.specdec import SpecGymError
    from experiments.train import main

    base = ["--env", "draft-verify", "--pair", "tiny-random", "--wandb-mode", "disabled"]
    with pytest.raises(SpecGymError, match="holds the 'heldout' split.*--split train"):
        main([*base, "--traces", str(traces / "heldout.npz")])
    with pytest.raises(SpecGymError, match="holds the 'train' split.*--split heldout"):
        main([*base, "--traces", str(traces / "train.npz"), "--eval-traces", str(traces / "train.npz")])


def test_train_refuses_an_unknown_pair_and_keeps_no_run_of_refused_input(traces, tmp_path):
    from envs.specdec import SpecGymError
    from experiments.train import main

    base = ["--env", "draft-verify", "--wandb-mode", "disabled", "--runs-dir", str(tmp_path)]
    with pytest.raises(SpecGymError, match="unknown pair 'nosuch'"):
        main([*base, "--pair", "nosuch"])  # before calibrating a cost model for it
    # in the CLI's words (the env's own message names its kwarg, pair=)
    with pytest.raises(SpecGymError, match="recorded for pair 'tiny-random', not 'gsm'; pass --pair tiny-random"):
        main([*base, "--pair", "gsm", "--traces", str(traces / "train.npz")])
    assert not list(tmp_path.iterdir())  # the refused run left no directory that looks resumable
    with pytest.raises(SystemExit):
        main([*base, "--rounds", "0"])


def test_env_kwargs_take_the_registered_shape_then_the_config():
    from experiments.train import build_parser, env_kwargs_for

    args = build_parser().parse_args(["--env", "draft-verify", "--pair", "tiny-random", "--backend", "live"])
    for env_id, config, shape in [
        ("SpecGym/DraftVerify-Draft-v0", {}, (4, 8)),
        ("SpecGym/DraftVerify-Draft-v0", {"width": 1, "max_depth": 6}, (1, 6)),
        ("SpecGym/DraftVerify-v0", {}, (1, 8)),
    ]:
        kwargs = env_kwargs_for(args, {"env_kwargs": config}, env_id)
        assert (kwargs["width"], kwargs["max_depth"]) == shape
    # the config's replay-only training aids are left out of live training, other kwargs kept
    aids = {"credit": "token", "rate": "best_static", "reward": "net_tokens"}
    kwargs = env_kwargs_for(args, {"env_kwargs": aids}, "SpecGym/DraftVerify-Draft-v0")
    assert "credit" not in kwargs and "rate" not in kwargs and kwargs["reward"] == "net_tokens"
    import gymnasium as gym

    gym.make("SpecGym/DraftVerify-Draft-v0", **{**kwargs, "cost_model": "analytic"})  # valid as it stands


def test_evaluate_reports_every_policy(trained, traces, tmp_path):
    out = tmp_path / "eval.json"
    evaluate.main(
        [
            "--policy",
            str(trained),
            "--pair",
            "tiny-random",
            "--traces",
            str(traces / "heldout.npz"),
            "--threads",
            "1",
            "--no-live",
            "--out",
            str(out),
        ]
    )
    data = json.loads(out.read_text())
    rules = {"heuristic", "confidence", "specdec++"}
    rules |= {f"{r}+expected" for r in rules}
    statics = {f"static_k{k}" for k in range(1, 9)}
    assert {"learned", "oracle", "oracle_depth", "target_only", *rules, *statics} <= set(data["policies"])
    rate = {name: row["tokens_per_s"] for name, row in data["policies"].items()}
    assert data["best_rule"] in rules and rate[data["best_rule"]] == max(rate[r] for r in rules)
    assert data["learned_over_best_rule"] == pytest.approx(rate["learned"] / rate[data["best_rule"]])
    # hindsight on the depth only bounds every schedule that verifies all it drafts
    assert max(rate[s] for s in statics) <= rate["oracle_depth"] * (1 + 1e-12)
    for row in data["policies"].values():
        assert {"tokens_per_s", "mean_accepted_length", "fraction_of_oracle"} <= set(row)
        assert row["fraction_of_oracle"] <= 1.0 + 1e-9  # nothing beats the oracle under the cost model
    assert data["policies"]["oracle"]["fraction_of_oracle"] == pytest.approx(1.0)
    assert data["n_prompts"] == 4 and 1 <= data["best_static_k"] <= 8
    assert data["prompts"] == "default mix (heldout)"
    assert "DraftVerify policies" in report.render(tmp_path)  # the results page reads this JSON


def test_evaluate_on_a_prompts_file_records_a_trace_and_measures_live(trained, tmp_path):
    """--prompts (MT-Bench style ``turns``): the oracle still comes from a trace recorded here."""
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"turns": [f"Question {i}: what is {i} + {i}?"]}) + "\n" for i in range(3)))
    out = tmp_path / "eval.json"
    evaluate.main(
        [
            "--policy",
            str(trained),
            "--pair",
            "tiny-random",
            "--prompts",
            str(prompts),
            "--n-prompts",
            "2",
            "--max-new-tokens",
            "12",
            "--threads",
            "1",
            "--out",
            str(out),
        ]
    )
    data = json.loads(out.read_text())
    assert data["n_prompts"] == 2 and data["traces"] == str(out.with_suffix(".trace.npz"))  # kept beside it
    assert data["prompts"] == str(prompts)
    assert data["policies"]["oracle"]["fraction_of_oracle"] == pytest.approx(1.0)
    assert max(row["fraction_of_oracle"] for row in data["policies"].values()) <= 1.0 + 1e-9
    best = f"static_k{data['best_static_k']}"
    for name in ("learned", best, "target_only"):
        assert data["policies"][name]["measured_tokens_per_s"] > 0, name
    assert data["measured_identical_outputs"], data["measured_divergences"]  # float32: SpD == target greedy


def test_evaluate_over_workers_scores_what_serial_does(trained, tmp_path):
    """--workers 2: the trace recorded by two Ray workers gives the serial scores, and the live
    decoding runs on the workers with the target's outputs."""
    pytest.importorskip("ray", reason="the Ray tests need the ray extra: pip install -e .[ray]")
    base = ["--policy", str(trained), "--pair", "tiny-random", "--n-prompts", "3", "--max-new-tokens", "12"]
    evaluate.main([*base, "--threads", "1", "--out", str(tmp_path / "serial.json")])
    evaluate.main([*base, "--workers", "2", "--out", str(tmp_path / "workers.json")])
    serial, workers = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("serial", "workers"))
    assert serial["best_static_k"] == workers["best_static_k"]
    for name, row in serial["policies"].items():
        for key in ("tokens_per_s", "mean_accepted_length", "fraction_of_oracle"):
            assert row[key] == workers["policies"][name][key], (name, key)
    assert workers["measured_identical_outputs"] and workers["policies"]["learned"]["measured_tokens_per_s"] > 0


def test_evaluate_refuses_traces_and_prompts_together_and_the_wall_clock_as_cost(trained, traces, tmp_path):
    from envs.specdec import SpecGymError

    held_out = ["--policy", str(trained), "--pair", "tiny-random", "--traces", str(traces / "heldout.npz"), "--no-live"]
    with pytest.raises(SpecGymError, match="not both"):
        evaluate.main([*held_out, "--prompts", str(tmp_path / "p.jsonl")])
    with pytest.raises(SpecGymError, match="not both"):
        evaluate.main([*held_out, "--n-prompts", "2"])  # a trace's prompts are all scored
    with pytest.raises(SpecGymError, match="measured separately"):
        evaluate.main([*held_out, "--cost-model", "measured"])
    with pytest.raises(SpecGymError, match="brings its own size policy"):
        evaluate.main([*held_out, "--verify-policy", str(trained / "verify_round1.zip")])


def test_evaluate_takes_the_runs_pair_and_refuses_other_pairs_traces_and_arbitration_runs(trained, traces, tmp_path):
    import shutil

    from envs.specdec import SpecGymError

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    results = json.loads((run / "results.json").read_text())
    results["stages"][-1]["env_kwargs"]["pair"] = "gsm"  # as if trained on gsm
    (run / "results.json").write_text(json.dumps(results))
    held_out = ["--policy", str(run), "--traces", str(traces / "heldout.npz"), "--no-live"]
    with pytest.raises(SpecGymError, match="recorded for pair 'tiny-random', not 'gsm'; pass --pair tiny-random"):
        evaluate.main(held_out)  # --pair defaults to the run's
    (run / "results.json").write_text(json.dumps({**results, "env": "arbitration", "policies": {"arbiter": "a.zip"}}))
    with pytest.raises(SpecGymError, match="holds no DraftVerify policy.*--env arbitration"):
        evaluate.main([*held_out, "--pair", "tiny-random"])
    with pytest.raises(SystemExit):
        evaluate.main(["--policy", str(trained), "--n-prompts", "0"])


def test_decode_benchmark_with_a_learned_policy(trained, tmp_path):
    out = tmp_path / "decode.json"
    benchmark.main(
        [
            "decode",
            "--pair",
            "tiny-random",
            "--threads",
            "1",
            "--n-prompts",
            "2",
            "--max-new-tokens",
            "16",
            "--ks",
            "1",
            "3",
            "--hf-k",
            "3",
            "--repeats",
            "1",
            "--policy",
            str(trained),
            "--out",
            str(out),
        ]
    )
    data = json.loads(out.read_text())
    names = {"target_only", "hf_assisted_k3", "hf_assisted_dynamic", "specgym_k1", "specgym_k3", "learned"}
    assert set(data["methods"]) == names
    assert data["identical_outputs"] is True  # greedy: every method returns the target's tokens
    assert data["methods"]["target_only"]["speedup_vs_target_only"] == pytest.approx(1.0)
    assert out.with_suffix(".md").read_text().count("|") > 20
    assert "End-to-end decoding" in report.render(tmp_path)  # the results page reads this JSON


def test_headroom_benchmark(trained, traces, tmp_path):
    out = tmp_path / "headroom.json"
    benchmark.main(
        [
            "headroom",
            "--pair",
            "tiny-random",
            "--traces",
            str(traces / "heldout.npz"),
            "--train-traces",
            str(traces / "train.npz"),
            "--cost-model",
            "analytic",
            "--policy",
            str(trained),
            "--draft-speedups",
            "4",
            "--tag",
            "draft x",
            "--target-features",
            "--out",
            str(out),
        ]
    )
    data = json.loads(out.read_text())
    assert "| tiny-random (draft x) | 4 | 1x |" in report.render(tmp_path)
    slow, fast = data["rows"]
    assert (slow["draft_speedup"], fast["draft_speedup"]) == (1.0, 4.0)
    assert "learned" in slow and "learned" not in fast  # the policy observes the real cost model only
    for row in data["rows"]:
        assert row["oracle"]["fraction_of_oracle"] == 1.0
        bound = row["oracle_depth"]["tokens_per_s"] * (1 + 1e-12)
        assert bound <= row["oracle"]["tokens_per_s"] * (1 + 1e-12)
        for name in ("best_static", "confidence_tuned", "specdec++_tuned"):
            assert row[name]["tokens_per_s"] <= bound, name  # these rules verify all they draft
        for name in ("confidence_expected_tuned", "specdec++_expected_tuned"):
            assert 0 < row[name]["tokens_per_s"] <= row["oracle"]["tokens_per_s"] * (1 + 1e-12), name
        assert 0.05 <= row["confidence_tuned"]["threshold"] <= 0.95
    assert fast["oracle"]["tokens_per_s"] > slow["oracle"]["tokens_per_s"]
    for name in ("learned", "learned_depth_hindsight_size", "hindsight_depth_learned_size"):
        assert 0 < slow[name]["tokens_per_s"] <= slow["oracle"]["tokens_per_s"] * (1 + 1e-12), name
    # hindsight on the depth with the learned sizes is not the oracle itself (unless they agree)
    assert slow["hindsight_depth_learned_size"]["tokens_per_s"] != slow["learned"]["tokens_per_s"]
    first = data["first_token_acceptance"]
    assert 0.0 <= first["auc"] <= 1.0 and 0.0 < first["hit_rate"] < 1.0 and first["n"] > 0
    assert 0.0 <= first["auc_fitted"] <= 1.0 and 0.0 <= first["auc_fitted_target"] <= 1.0
    per = data["by_prompt"]
    assert per["static_k"] == slow["best_static"]["k"]
    assert set(per["correlation"]) == {"confidence_expected_tuned", "learned"}
    assert [p["prompt"] for p in per["prompts"]] == list(range(data["n_prompts"]))
    for p in per["prompts"]:
        assert 0 < p["learned_fraction"] <= 1 + 1e-12 and p["oracle_accepted_length"] >= 1
    # per prompt, the oracle's time over all prompts adds up to the headline oracle's rate
    seconds = sum(p["tokens"] / p["oracle_tokens_per_s"] for p in per["prompts"])
    total = sum(p["tokens"] for p in per["prompts"]) / seconds
    assert total == pytest.approx(slow["oracle"]["tokens_per_s"])
    # picking the threshold per prompt in hindsight can only beat one threshold for all prompts
    hind = per["confidence_expected_per_prompt_hindsight"]
    heldout_best = max(slow["confidence_expected_tuned"]["tokens_per_s"], hind["tokens_per_s"])
    assert hind["tokens_per_s"] == heldout_best <= slow["oracle"]["tokens_per_s"] * (1 + 1e-12)


def test_target_side_is_the_newest_verified_position(traces):
    """Row i holds the target's view after feeding prompt + output[:i-1], whose greedy token is output[i-1]."""
    import torch

    from envs.pairs import shared_pair
    from envs.specdec.sampling import log_probs
    from envs.specdec.trace import Trace
    from experiments.benchmarks.headroom import TARGET_FEATURES, first_token, target_side

    trace = Trace.load(traces / "heldout.npz")
    target = shared_pair("tiny-random", "cpu", trace.meta["pair_info"]["dtype"]).target
    sides = target_side(trace, target)
    assert len(sides) == len(first_token(trace)[1]) == len(trace.output_tokens)
    pt, n = trace.prompt(1), len(TARGET_FEATURES)
    start = len(trace.prompt(0).output)  # prompt 1's rows follow prompt 0's
    assert len(pt.output) > 2
    for i in (0, 1, len(pt.output) - 1):
        # at i = 0 the target has prefilled all but the prompt's last token, as the engine does
        seq = [*pt.prompt.tolist(), *pt.output[: i - 1].tolist()] if i else pt.prompt[:-1].tolist()
        with torch.no_grad():
            out = target(input_ids=torch.tensor([seq]), output_hidden_states=True)
        lp = log_probs(out.logits[0, -1])
        if i:
            assert int(lp.argmax()) == pt.output[i - 1]
        row = sides[start + i]
        assert row[0] == pytest.approx(float(lp.max()), abs=1e-4)
        assert np.allclose(row[n:], out.hidden_states[-1][0, -1].double().numpy(), atol=1e-4)


def test_target_features_refuse_another_pairs_traces(traces):
    from envs.specdec.errors import SpecGymError

    with pytest.raises(SpecGymError, match="recorded for pair 'tiny-random', not 'gsm'; pass --pair tiny-random"):
        benchmark.main(
            [
                "headroom",
                "--pair",
                "gsm",
                "--traces",
                str(traces / "heldout.npz"),
                "--train-traces",
                str(traces / "train.npz"),
                "--cost-model",
                "analytic",
                "--target-features",
            ]
        )


def test_logistic_fit_combines_features_on_held_out_rows():
    from experiments.benchmarks.headroom import auc, logistic_scores

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 3))
    y = x[:, 0] - 2 * x[:, 1] + 0.3 * rng.normal(size=2000) > 0  # the third feature is noise
    scores = logistic_scores(x[:1500], y[:1500], x[1500:])
    assert auc(scores, y[1500:]) > 0.97 > 0.75 > auc(x[1500:, 0], y[1500:])


def test_auc_matches_pairwise_counting():
    from experiments.benchmarks.headroom import auc

    rng = np.random.default_rng(0)
    scores, hits = rng.integers(0, 5, 60) / 4, rng.random(60) < 0.4  # many ties
    pairs = [(s > t) + 0.5 * (s == t) for s in scores[hits] for t in scores[~hits]]
    assert auc(scores, hits) == pytest.approx(np.mean(pairs))
    assert auc(np.arange(4), np.array([0, 0, 1, 1])) == 1.0 and auc(np.arange(4), np.array([1, 1, 0, 0])) == 0.0


def test_sigint_keeps_a_checkpoint_and_resume_finishes(traces, tmp_path):
    runs = tmp_path / "runs"
    env = {**os.environ, "WANDB_MODE": "disabled"}
    proc = subprocess.Popen(train_cmd(traces, runs, 200_000), env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not list(runs.glob("*/tb/*")):
        time.sleep(0.5)
    time.sleep(3)  # let it take some steps
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    run = run_dir_of(runs)
    checkpoints = list((run / "checkpoints").glob("draft_round1_*_steps.zip"))
    assert checkpoints and f"--resume {run}" in err
    steps = int(checkpoints[0].name.split("_")[-2])
    assert steps > 0
    spent = json.loads((run / "clock.json").read_text())  # the interrupted part's time is kept
    assert spent["draft_round1"] >= 3 and spent["run"] >= spent["train"] >= spent["draft_round1"]
    # resume, naming only the run and a budget just past the checkpoint: it continues (not restarts)
    # with the run's own pair, traces and seed, and finishes
    cmd = [sys.executable, "-m", "experiments.train", "--resume", str(run), "--timesteps", str(steps + 256)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (run / "draft_round1.zip").is_file() and (run / "results.json").is_file()
    results = json.loads((run / "results.json").read_text())
    assert (results["pair"], results["seed"]) == ("tiny-random", 0)
    assert results["stages"][0]["env_kwargs"]["traces"] == str(traces / "train.npz")
    assert results["stages"][0]["n_timesteps"] == steps + 256
    # the resumed run reports the time of both parts
    assert results["stages"][0]["seconds"] > spent["draft_round1"]
    assert results["total_seconds"] > results["train_seconds"] > spent["train"]


def test_a_published_run_is_a_policy_by_name(trained, traces, tmp_path, monkeypatch):
    """experiments.publish ships a run's pair; evaluate --policy NAME scores what the run directory
    scores, and the name partners an env in the role it does not train."""
    import gymnasium as gym

    import envs.published
    from envs.partners import SB3Policy, make_policy
    from envs.specdec.schedules import Composite
    from experiments import publish
    from experiments.cli import run_main

    monkeypatch.setattr(envs.published, "POLICIES", tmp_path / "policies")
    folder = publish.publish(trained, "tiny-pair", out=tmp_path / "policies")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "draft.zip", "policy.json", "verify.zip"]
    data = json.loads((folder / "policy.json").read_text())
    assert data["pair"] == "tiny-random" and data["seed"] == 0 and "traces" not in data["env_kwargs"]
    # each role's own action setting, as the training config gave it (the card says how each acts)
    assert (data["env_kwargs"]["depth_action"], data["env_kwargs"]["size_action"]) == ("expected", "expected")
    assert data["command"].startswith("python -m experiments.train --env draft-verify --pair tiny-random")
    card = (folder / "README.md").read_text()
    assert data["command"] in card and f"{data['heldout']['learned_tokens_per_s']:.1f}" in card
    assert envs.published.published_names() == ["tiny-pair"]
    assert isinstance(make_policy("tiny-pair", role="verify"), SB3Policy)
    assert isinstance(make_policy("tiny-pair"), Composite)  # role joint: both policies
    scores = {}
    for policy in (str(trained), "tiny-pair"):
        out = tmp_path / f"{Path(policy).name}.json"
        base = ["--policy", policy, "--traces", str(traces / "heldout.npz"), "--threads", "1", "--no-live"]
        evaluate.main([*base, "--out", str(out)])
        scores[policy] = json.loads(out.read_text())["policies"]["learned"]["tokens_per_s"]
    assert scores["tiny-pair"] == scores[str(trained)]
    env = gym.make(
        "SpecGym/DraftVerify-Draft-v0", pair="tiny-random", traces=str(traces / "train.npz"), partner="tiny-pair"
    )
    env.reset(seed=0)
    env.step(0)
    with pytest.raises(SystemExit) as exc:  # a second publish of the name is refused: exit 2, one line
        run_main(publish.main, [str(trained), "--name", "tiny-pair", "--out", str(tmp_path / "policies")])
    assert exc.value.code == 2


def test_eval_items_come_from_the_pairs_config_unless_given(tmp_path):
    """smollm2-math's config layer evaluates on its bundled 1,000 held-out items, other pairs on the
    default's 700; --eval-items wins, and a DraftVerify-only run has none."""
    from experiments.train import resolve_eval_items
    from experiments.training.args import TrainArgs

    def items(pair, given=None, envs=("arbitration",), config=None):
        args = TrainArgs(pair=pair, eval_items=given, config=config)
        return resolve_eval_items(args, list(envs)).eval_items

    assert (items("smollm2-math"), items("gsm"), items("gsm", 12)) == (1000, 700, 12)
    assert items("gsm", envs=("draft-verify",)) is None
    custom = tmp_path / "c.yaml"
    custom.write_text("default: {n_timesteps: 10}\n")
    assert items("gsm", config=str(custom)) == 700  # a config without eval_items: the built-in default


def test_a_role_plays_the_rule_its_action_scales_until_it_is_trained(tmp_path):
    from experiments.train import RULE_PARTNERS, first_partners, role_env_id
    from experiments.training.config import CONFIG_DIR, load_config

    def partners(config) -> dict:
        return first_partners({role: load_config(config, role_env_id(role), None) for role in RULE_PARTNERS})

    assert partners(str(CONFIG_DIR / "draft_verify.yaml")) == {"verify": "expected", "draft": "expected-depth"}
    plain = tmp_path / "plain.yaml"  # raw actions: the env's default partner
    plain.write_text("default:\n  n_timesteps: 64\n")
    assert partners(str(plain)) == {"verify": None, "draft": None}
