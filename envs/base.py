"""What the SpecGym environments share beyond the engine."""

from __future__ import annotations

from typing import Any


class PickleByConfig:
    """Pickle an env as its constructor kwargs and spec: the models are shared per process and an
    episode in progress is not worth copying, so unpickling rebuilds the env (call ``reset()``)."""

    _kwargs: dict[str, Any]

    def __getstate__(self) -> dict:
        return {"kwargs": self._kwargs, "spec": self.spec}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state["kwargs"])
        self.spec = state["spec"]
