"""python -m experiments.gpu_suite --device cpu --quick: every step runs small on tiny-random and
writes the JSON it promises, each naming its device; failures are recorded, not fatal."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from experiments import gpu_suite

QUICK = ["--device", "cpu", "--quick", "--threads", "1"]


BUSY = "SpecGymError: the machine is busy"  # calibration's refusal on a loaded machine (envs.specdec.cost)


# what a lent GPU machine lacks (docs/gpu.md): the suite must not need them
ABSENT = ("reasoning_gym", "wandb", "ray")


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_suite")
    with pytest.MonkeyPatch.context() as mp:
        for name in ABSENT:
            mp.setitem(sys.modules, name, None)  # importing it now raises ImportError
        return out, gpu_suite.main(["--out", str(out), *QUICK])


def calibrated(out) -> bool:
    """Whether the cost step's calibration passed; it refuses, by design, when other work on the
    machine makes more tokens look cheaper than fewer (a loaded CI runner)."""
    cost = json.loads((out / "cost.json").read_text())
    assert cost["status"] == "ok" or cost["error"].startswith(BUSY), cost["error"]
    return cost["status"] == "ok"


def test_every_step_writes_its_json_naming_the_device(suite):
    out, code = suite
    summary = json.loads((out / "summary.json").read_text())
    failed = {name: row["error"] for name, row in summary["steps"].items() if row["status"] != "ok"}
    assert set(failed) <= {"cost"}, failed
    assert (code == 0) == summary["passed"] == calibrated(out)
    assert list(summary["steps"]) == list(gpu_suite.STEPS)
    assert summary["device"].startswith("cpu") and summary["pair"] == "tiny-random" and summary["quick"] is True
    for name, row in summary["steps"].items():
        data = json.loads((out / row["file"]).read_text())
        assert data["step"] == name and data["status"] == row["status"] and data["seconds"] >= 0
        assert data["device"].startswith("cpu"), name


def test_steps_record_what_they_measured(suite):
    out, _ = suite
    read = lambda name: json.loads((out / f"{name}.json").read_text())  # noqa: E731
    lossless = read("lossless")
    assert lossless["identical_outputs"] is True and lossless["dtype"] == "float32"
    assert {"k1", "k4", "tree_w4_d8"} <= set(lossless["shapes"])
    assert read("engine")["identical_outputs"] is True and read("engine")["hf_assisted_tokens_per_s"] > 0
    assert read("pair")["best_static_k"] in (1, 2, 4)
    profile = str(out / "profile.json") if calibrated(out) else "analytic"
    if calibrated(out):
        assert read("cost")["profile"] == profile and read("cost")["n_cycles"] > 0
    trace = read("trace")
    assert trace["train"]["n_prompts"] == 4 and trace["heldout"]["n_prompts"] == 3
    policy = read("policy")
    assert policy["trained_here"] is True and policy["cost_model"] == profile and (out / "runs").is_dir()
    evaluation = read("evaluate")
    assert evaluation["cost_model"] == profile and evaluation["traces"] == trace["heldout"]["path"]
    learned = evaluation["policies"]["learned"]
    assert learned["tokens_per_s"] > 0 and learned["measured_tokens_per_s"] > 0  # cost model and live
    assert evaluation["measured_identical_outputs"] is True


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_frozen_prompt_files_are_the_default_mix(split):
    from envs.tasks import load_prompts
    from envs.tasks.prompts import jsonl_prompts
    from envs.tasks.splits import split_seed

    frozen = jsonl_prompts(gpu_suite.PROMPTS[split])
    assert frozen == load_prompts(None, len(frozen), split_seed(split))


def test_a_failed_step_is_recorded_and_the_rest_run(tmp_path, monkeypatch):
    def broken(suite):
        raise RuntimeError("first line\nCUDA error: out of memory")

    monkeypatch.setattr(gpu_suite, "step_engine", broken)
    code = gpu_suite.main(["--out", str(tmp_path), *QUICK, "--steps", "environment", "engine", "evaluate"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert code == 1 and summary["passed"] is False
    assert summary["steps"]["environment"]["status"] == "ok"
    engine = json.loads((tmp_path / "engine.json").read_text())
    assert engine["status"] == "failed" and engine["error"] == "RuntimeError: CUDA error: out of memory"
    assert engine["device"].startswith("cpu")
    evaluation = summary["steps"]["evaluate"]
    assert evaluation["status"] == "skipped" and "needs trace, policy" in evaluation["error"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_one_line_and_exit_2(tmp_path):
    cmd = [sys.executable, "-m", "experiments.gpu_suite", "--out", str(tmp_path / "out"), "--device", "cuda"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "CUDA is not available" in lines[0]
    assert not (tmp_path / "out").exists()  # refused before any step
