"""experiments.training.tracking: W&B runs that mirror several TensorBoard directories quietly."""

from __future__ import annotations

import pytest


def test_runs_with_a_tensorboard_directory_per_stage_are_not_warned(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    from torch.utils.tensorboard import SummaryWriter

    from experiments.training.tracking import finish_run, start_run, tensorboard_dir

    warned: list[str] = []
    monkeypatch.setattr(wandb, "termwarn", lambda message, *args, **kwargs: warned.append(message))
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("draft-verify", "arbitration"):  # two runs of one process, as the default experiment's
        run_dir = tmp_path / name
        run_dir.mkdir()
        run = start_run(
            project="specgym-test", entity=None, mode="offline", name=name, group="test", config={}, run_dir=run_dir
        )
        for stage in ("draft_round1_1", "verify_round1_1"):  # SB3's directory per stage (tb_log_name)
            writer = SummaryWriter(str(tensorboard_dir(run_dir) / stage))
            writer.add_scalar("rollout/ep_rew_mean", 1.0, 0)
            writer.close()
        finish_run(run)
    # sync_tensorboard=True alone: "When using several event log directories, please call
    # `wandb.tensorboard.patch(root_logdir=...)`" once per further directory, over both runs
    assert not [m for m in warned if "log director" in m], warned
    assert not wandb.patched["tensorboard"]  # taken off: a later untracked run's writers are left alone


def test_online_without_a_key_is_refused_naming_wandb_login(tmp_path, monkeypatch):
    from envs.specdec.errors import SpecGymError
    from experiments.training.tracking import check_wandb_mode

    for key in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    with pytest.raises(SpecGymError, match="wandb login.*--wandb-mode offline"):
        check_wandb_mode("online")
    check_wandb_mode(None)  # no key: offline by default
    check_wandb_mode("offline")
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    check_wandb_mode("online")  # what `wandb login` saves
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    monkeypatch.setenv("WANDB_MODE", "online")
    with pytest.raises(SpecGymError, match="wandb login"):
        check_wandb_mode(None)
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    check_wandb_mode(None)
