"""The resumable training loop the project's model recipes share (the SmolLM2 draft, the gsm pair).

Each recipe gives its model, optimiser, schedule and a loss for step ``i``; the loop does the
update, the progress bar, a checkpoint every ``checkpoint_seconds`` and one on Ctrl-C, and
resumes from the checkpoint (same data order: recipes derive each batch from the step number).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from envs.specdec.errors import SpecGymError
from envs.specdec.files import write_atomic


def save_atomic(obj: object, path: Path) -> None:
    """torch.save whole or not at all (:func:`~envs.specdec.files.write_atomic`): a crash never
    leaves a truncated checkpoint."""
    write_atomic(path, lambda f: torch.save(obj, f))


def resumable_training(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    loss_at: Callable[[int], tuple[torch.Tensor, dict[str, float]]],
    *,
    steps: int,
    ckpt: Path,
    checkpoint_seconds: float,
    desc: str,
    progress: bool,
    trainable_only: bool = False,
) -> float:
    """Train for ``steps`` updates of ``loss_at(step)`` (loss, extra progress-bar values), resuming
    from ``ckpt``; returns the training seconds over all resumed runs. ``trainable_only``: the
    checkpoint holds only the parameters that train (a LoRA adapter, not its frozen base model)."""
    from tqdm.auto import tqdm

    trained = {name for name, p in model.named_parameters() if p.requires_grad}

    def weights() -> dict[str, torch.Tensor]:
        state = model.state_dict()
        return {k: v for k, v in state.items() if k in trained} if trainable_only else state

    start, spent = 0, 0.0
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        if state["steps"] != steps:
            raise SpecGymError(
                f"{ckpt} was trained for --steps {state['steps']}, not {steps}; "
                "pass the same --steps or delete the checkpoint"
            )
        _, unexpected = model.load_state_dict(state["model"], strict=not trainable_only)
        if unexpected or (trainable_only and trained - set(state["model"])):
            raise SpecGymError(f"{ckpt} holds other weights than this model trains; delete the checkpoint")
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start, spent = state["step"], state["seconds"]
    began = last_save = time.monotonic()

    def save(step: int) -> None:
        save_atomic(
            {
                "model": weights(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "step": step,
                "steps": steps,
                "seconds": spent + time.monotonic() - began,
            },
            ckpt,
        )

    model.train()
    bar = tqdm(total=steps, initial=start, desc=desc, unit="step", disable=not progress)
    step = start
    try:
        while step < steps:
            loss, extra = loss_at(step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", **{k: f"{v:.3f}" for k, v in extra.items()})
            if time.monotonic() - last_save > checkpoint_seconds:
                save(step)
                last_save = time.monotonic()
    except KeyboardInterrupt:
        save(step)
        bar.close()
        print(
            f"\ninterrupted: checkpoint at step {step} saved to {ckpt}; run the same command again to resume",
            file=sys.stderr,
        )
        raise
    bar.close()
    save(step)
    model.eval()
    return spent + time.monotonic() - began
