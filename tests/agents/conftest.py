"""The DraftVerify fixtures (tiny float64 pair, prompts, traces) for the policy tests."""

from tests.envs.conftest import f64_pair, live_kwargs, prompt_file, trace_path  # noqa: F401
