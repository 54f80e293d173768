"""SpecGym/Arbitration: keep the draft's or the target's token at a mismatch (CoSpec); see :class:`ArbitrationEnv`.

``env`` holds the environment (live decoding, or replay of a recorded decision tree), ``features``
its observation, ``record`` the recording of decision trees that replay serves.
"""

from envs.arbitration.env import KEEP_DRAFT, KEEP_TARGET, N_FEATURES, ArbitrationEnv

__all__ = ["KEEP_DRAFT", "KEEP_TARGET", "N_FEATURES", "ArbitrationEnv"]
