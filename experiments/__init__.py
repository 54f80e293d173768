"""Entry points: python -m experiments.train | evaluate | benchmark | build_pair | record_traces."""

import envs  # noqa: F401  (offline hub and OpenMP settings, which must precede the torch import)
