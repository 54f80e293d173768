"""SpecGym tests; importing envs first applies its offline-hub and OpenMP settings before torch loads."""

import envs  # noqa: F401
