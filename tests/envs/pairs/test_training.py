"""The shared resumable training loop: Ctrl-C leaves a checkpoint, a rerun continues from it, and a
checkpoint of another length is refused."""

from __future__ import annotations

import pytest
import torch

from envs.pairs.training import resumable_training
from envs.specdec import SpecGymError


def setup():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return model, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)


def run(ckpt, steps, seen, stop_at=None):
    model, opt, sched = setup()

    def loss_at(step):
        if step == stop_at:
            raise KeyboardInterrupt
        seen.append(step)
        x = torch.full((1, 3), float(step))
        return (model(x) ** 2).mean(), {}

    resumable_training(
        model, opt, sched, loss_at, steps=steps, ckpt=ckpt, checkpoint_seconds=1e9, desc="t", progress=False
    )
    return model


def test_interrupt_then_resume_equals_one_run(tmp_path):
    seen: list[int] = []
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "a.pt", 5, seen, stop_at=3)
    assert torch.load(tmp_path / "a.pt", weights_only=False)["step"] == 3
    resumed = run(tmp_path / "a.pt", 5, seen)
    assert seen == [0, 1, 2, 3, 4]
    straight = run(tmp_path / "b.pt", 5, [])
    assert torch.equal(resumed.weight, straight.weight)
    with pytest.raises(SpecGymError, match="--steps 5, not 6"):
        run(tmp_path / "a.pt", 6, [])
