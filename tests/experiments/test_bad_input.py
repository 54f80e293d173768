"""Bad command lines end in exit code 2 and one ``error:`` line naming the fix, never a traceback,
and leave no run directory behind (the cases: experiments.check_inputs)."""

from __future__ import annotations

import json

import pytest

from envs.specdec.errors import SpecGymError
from experiments.check_inputs import CASES, leftover_runs, prepare, sweep


@pytest.mark.once  # 45 fresh processes; the floor's own refusals are tested beside the code that makes them
def test_bad_command_lines_are_refused_in_one_line(tmp_path):
    prepare(tmp_path)
    outcomes = sweep(CASES, tmp_path, workers=2)
    for o in outcomes:
        assert o.returncode == 2, (o.case.name, o.stderr[-2000:])
        assert not o.traceback, (o.case.name, o.stderr[-2000:])
        assert len(o.error_lines) == 1, (o.case.name, o.stderr[-2000:])
        assert o.case.expect in o.error_line, (o.case.name, o.error_line)
    assert not leftover_runs(tmp_path)  # refused runs leave no directory that looks resumable
    # the resumed run whose checkpoints are gone is kept as it was (nothing trained into it)
    assert not (tmp_path / "run" / "arbiter.zip").exists()


def test_resume_skips_a_finished_stage_and_refuses_one_whose_checkpoints_are_gone(tmp_path):
    from experiments.training.ppo import train

    config = {"n_timesteps": 64, "n_envs": 1}
    (tmp_path / "first.zip").write_bytes(b"")  # a stage that finished before the interruption
    assert train("no-such-env", {}, config, tmp_path, name="first", seed=0, resume=True) == tmp_path / "first.zip"
    (tmp_path / "tb" / "second_1").mkdir(parents=True)  # began, then its checkpoints were deleted
    with pytest.raises(SpecGymError, match="no checkpoints for stage second and no saved policy.*restore"):
        train("no-such-env", {}, config, tmp_path, name="second", seed=0, resume=True)


def test_a_checkpoint_of_zero_steps_counts(tmp_path):
    from experiments.training.ppo import latest_checkpoint

    assert latest_checkpoint(tmp_path, "draft_round1") == (None, 0)
    (tmp_path / "draft_round1_0_steps.zip").write_bytes(b"")  # Ctrl-C before the first rollout
    assert latest_checkpoint(tmp_path, "draft_round1") == (tmp_path / "draft_round1_0_steps.zip", 0)
    (tmp_path / "draft_round1_2048_steps.zip").write_bytes(b"")
    assert latest_checkpoint(tmp_path, "draft_round1")[1] == 2048


def test_runs_started_in_the_same_second_get_directories_of_their_own(tmp_path):
    from experiments.train import new_run_dir

    name = "arbitration__ppo__3__20250101-120000"
    dirs = [new_run_dir(tmp_path / "runs", name) for _ in range(3)]
    assert [d.name for d in dirs] == [name, f"{name}-2", f"{name}-3"]
    assert all(d.is_dir() and int(d.name.split("__")[2]) == 3 for d in dirs)  # the seed resume parses


def test_summaries_written_in_the_same_second_do_not_overwrite_each_other(tmp_path):
    from envs.specdec.files import leftovers
    from experiments.train import write_summary

    name = "summary__default__20250101-120000"
    paths = [write_summary(tmp_path, name, {"runs": [i]}, f"table {i}") for i in range(3)]
    assert [p.name for p in paths] == [f"{name}.json", f"{name}-2.json", f"{name}-3.json"]
    assert [json.loads(p.read_text())["runs"] for p in paths] == [[0], [1], [2]]
    assert [p.with_suffix(".md").read_text() for p in paths] == ["table 0\n", "table 1\n", "table 2\n"]
    assert not any(leftovers(p) for p in paths)


def test_results_report_the_steps_ppo_trained(tmp_path):
    """A budget below one rollout trains the whole rollout: timesteps_trained says so."""
    import gymnasium as gym
    from stable_baselines3 import PPO

    from experiments.training.ppo import trained_timesteps

    model = PPO("MlpPolicy", gym.make("CartPole-v1"), n_steps=64, batch_size=32, n_epochs=1, seed=0)
    model.learn(total_timesteps=10)
    model.save(tmp_path / "policy.zip")
    assert trained_timesteps(tmp_path / "policy.zip") == model.num_timesteps == 64


def test_unwritable_directories_are_refused_naming_the_fix(tmp_path, monkeypatch):
    from envs.pairs.build import check_data_dir_writable, check_writable

    (tmp_path / "file").write_text("")
    check_writable(tmp_path / "new" / "runs", "--runs-dir", "fix")  # missing: made later under a writable parent
    with pytest.raises(SpecGymError, match="--runs-dir .*file/runs is not writable; fix"):
        check_writable(tmp_path / "file" / "runs", "--runs-dir", "fix")
    monkeypatch.setenv("SPECGYM_DATA", str(tmp_path / "file" / "data"))
    with pytest.raises(SpecGymError, match="set SPECGYM_DATA to a writable directory"):
        check_data_dir_writable()
    monkeypatch.setattr("os.access", lambda path, mode: False)  # a read-only mount, as root sees it too
    with pytest.raises(SpecGymError, match="not writable"):
        check_writable(tmp_path, "--runs-dir", "fix")


def test_jsonl_lines_must_be_objects(tmp_path):
    from envs.tasks.math import jsonl_items
    from envs.tasks.prompts import jsonl_prompts

    path = tmp_path / "items.jsonl"
    path.write_text(json.dumps({"question": "1+1?", "answer": "#### 2"}) + "\n" + json.dumps([1, 2]) + "\n")
    with pytest.raises(SpecGymError, match=r"items.jsonl:2 is a JSON array, not an object"):
        jsonl_items(path)
    path.write_text('"just text"\n')
    with pytest.raises(SpecGymError, match=r"items.jsonl:1 is a JSON string, not an object"):
        jsonl_prompts(path)
