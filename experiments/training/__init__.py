"""Training machinery behind ``python -m experiments.train``: configs, PPO runs, tracking."""
