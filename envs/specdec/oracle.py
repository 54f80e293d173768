"""The oracle: the best DraftVerify schedule for a recorded trace, by dynamic programming over the
replay's tables under the same cost model (``oracle``; ``oracle-depth`` knows the depth in hindsight
but verifies everything it drafts, so its gap to ``oracle`` is what choosing the verified nodes in
hindsight is worth)."""

from __future__ import annotations

import numpy as np

from envs.specdec.cycles import CycleSource, joint_actions
from envs.specdec.errors import SpecGymError
from envs.specdec.replay import PromptTables, TraceReplay
from envs.specdec.schedules import Policy


class Oracle(Policy):
    """Minimum total time to produce the trace's known output, by dynamic programming.

    State: (position i, pending tokens p in {1, 2}); action: (depth d, verify size n) with
    d <= the env's cap at i and 0 <= n <= d * W (n = 0, sending no node, is the verify role's;
    the joint role's sizes start at 1, so the oracle bounds every role). T[i, p] = min
    cost(i, p, d, n) + T[i + new(i, d, n), p'], with new = accepted + 1 (fewer at the end) and
    p' = 2 when the whole depth was accepted. As the depth partner it follows the plan for the
    cycle's start state; as the size partner it picks the best size for whatever depth was
    drafted. ``verify_all`` restricts every cycle to n = d * W (hindsight on the depth only).
    """

    def __init__(self, replay: TraceReplay, verify_all: bool = False):
        self.replay, self.verify_all = replay, verify_all
        self.name = "oracle-depth" if verify_all else "oracle"
        actions = joint_actions(replay.max_depth, replay.width)
        if verify_all:
            self.actions = actions[actions[:, 1] == actions[:, 0] * replay.width]
        else:
            none = np.stack([np.arange(1, replay.max_depth + 1), np.zeros(replay.max_depth, np.int64)], axis=1)
            self.actions = np.concatenate([none, actions])
        self._solved: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._version = replay.cost_version  # plans hold under the cost model they were made with
        self._depth = 1

    def solve(self, prompt_index: int) -> tuple[np.ndarray, np.ndarray]:
        """(T [n + 1, 2] seconds to finish, best [n, 2] action index) for pending = 1, 2."""
        if self._version != self.replay.cost_version:
            self._solved, self._version = {}, self.replay.cost_version
        if prompt_index not in self._solved:
            self._solved[prompt_index] = self._dp(self.replay.tables(prompt_index))
        return self._solved[prompt_index]

    def _dp(self, t: PromptTables) -> tuple[np.ndarray, np.ndarray]:
        d, n = self.actions[:, 0], self.actions[:, 1]
        total = np.zeros((t.n + 1, 2))
        best = np.zeros((t.n, 2), np.int64)
        for i in range(t.n - 1, -1, -1):
            rest = (d - 1) * t.draft_level[i] + t.verify[i, n] + self._after(t, total, i, d, n)
            rest = np.where(d <= t.cap[i], rest, np.inf)
            for p in (0, 1):
                cost = t.draft_first[i, p] + rest
                best[i, p] = int(np.argmin(cost))
                total[i, p] = cost[best[i, p]]
        return total, best

    @staticmethod
    def _after(t: PromptTables, total: np.ndarray, i: int, d, n) -> np.ndarray:
        """Seconds to finish from the state a cycle at ``i`` with depth ``d`` and size ``n`` leads to."""
        acc = t.acc[i, d - 1, n].astype(np.int64)
        return total[i + np.minimum(acc + 1, t.n - i), (acc == d).astype(np.int64)]

    def _check(self, source: CycleSource) -> PromptTables:
        if source is not self.replay:
            raise SpecGymError("the oracle plans on its own trace replay; run it on that source")
        return source.t

    def plan(self, source: CycleSource) -> None:
        self._check(source)
        _, best = self.solve(source.prompt_index)
        self._depth = int(self.actions[best[source.position, source.pending - 1], 0])

    def keep_drafting(self, source: CycleSource) -> bool:
        return source.depth < self._depth

    def verify_size(self, source: CycleSource) -> int:
        t = self._check(source)
        total, _ = self.solve(source.prompt_index)
        i, d = source.position, source.depth
        n = self.actions[self.actions[:, 0] == d, 1]  # the sizes it may send at this depth
        return int(n[np.argmin(t.verify[i, n] + self._after(t, total, i, d, n))])
