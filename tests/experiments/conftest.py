"""Fixtures of the experiments' tests."""

from __future__ import annotations

import pytest

from experiments import record_traces

TRACE = ["--pair", "tiny-random", "--width", "4", "--max-depth", "8", "--max-new-tokens", "32", "--threads", "1"]


@pytest.fixture(scope="session")
def traces(tmp_path_factory):
    """A directory with tiny-random DraftVerify traces ``train.npz`` (6 prompts) and ``heldout.npz`` (4)."""
    out = tmp_path_factory.mktemp("traces")
    record_traces.main([*TRACE, "--split", "train", "--n-prompts", "6", "--out", str(out / "train.npz")])
    record_traces.main([*TRACE, "--split", "heldout", "--n-prompts", "4", "--out", str(out / "heldout.npz")])
    return out
