"""What the SpecGym environments share beyond the engine."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from envs.specdec.errors import SpecGymError


class PickleByConfig:
    """Pickle an env as its constructor kwargs and spec: the models are shared per process and an
    episode in progress is not worth copying, so unpickling rebuilds the env (call ``reset()``)."""

    _kwargs: dict[str, Any]

    def __getstate__(self) -> dict:
        return {"kwargs": self._kwargs, "spec": self.spec}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state["kwargs"])
        self.spec = state["spec"]


def discrete_action(action: Any, space: spaces.Discrete, meaning: str) -> int:
    """``action`` as an int when ``space`` holds it; else a SpecGymError naming the valid range.

    An integer may come as a Python or numpy scalar or in a one-element numpy integer array
    (0-d or shape (1,)), as SB3's ``predict`` and VecEnvs pass it. ``meaning``: what the actions
    are, for the message.
    """
    a = action
    # the common cases first, on the hot path (gymnasium's contains() costs a third of a replay step)
    if (type(a) is int or isinstance(a, np.integer)) and space.start <= a < space.start + space.n:
        return int(a)
    if isinstance(a, np.ndarray) and a.size == 1 and np.issubdtype(a.dtype, np.integer):
        a = a.reshape(())[()]
    if not space.contains(a):
        shown = " ".join(repr(action).split())
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        first, last = int(space.start), int(space.start + space.n - 1)
        raise SpecGymError(
            f"action {shown} is not in the action space Discrete({space.n}): pass one integer in "
            f"{first}..{last} ({meaning})"
        )
    return int(a)
