"""DraftVerify fixtures: a float64 tiny pair (exact live/replay parity), short prompts, traces;
Arbitration fixtures: branch records of the registered Arbitration ids' items.

The env loads pairs by name, so the float64 pair is ``pair="tiny-random", dtype="float64"``;
the fixture takes the env module's cached copy, the very models the envs run.
"""

from __future__ import annotations

import inspect
import json
import socket
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import pytest
import torch
import transformers

from envs.arbitration import ArbitrationEnv
from envs.arbitration.record import record_env
from envs.pairs import shared_pair
from envs.specdec.pair import ModelPair
from envs.specdec.trace import record_trace

torch.set_num_threads(1)

PROMPTS = ["The cat sat on the mat.", "Hello world, how are you today?", "2 + 2 ="]
MAX_NEW = 40
MAX_DEPTH = 6
LIVE = {
    "pair": "tiny-random",
    "dtype": "float64",
    "device": "cpu",
    "max_new_tokens": MAX_NEW,
    "max_depth": MAX_DEPTH,
}

_traces: dict[int, str] = {}


@dataclass(frozen=True)
class DraftVerifySetup:
    """What the DraftVerify fixtures were built with, for the tests that check against it."""

    prompts: list[str] = field(default_factory=lambda: list(PROMPTS))
    max_new: int = MAX_NEW
    max_depth: int = MAX_DEPTH


@pytest.fixture(scope="session")
def dv() -> DraftVerifySetup:
    return DraftVerifySetup()


def _play(env, actions_rng: np.random.Generator, *, seed: int = 0, index: int | None = None, limit: int = 10_000):
    """One episode with masked random actions: (observations, rewards, infos)."""
    options = None if index is None else {"prompt_index": index}
    obs, info = env.reset(seed=seed, options=options)
    observations, rewards, infos = [obs], [], [info]
    for _ in range(limit):
        valid = np.flatnonzero(env.unwrapped.action_masks())
        obs, reward, terminated, truncated, info = env.step(int(actions_rng.choice(valid)))
        observations.append(obs)
        rewards.append(reward)
        infos.append(info)
        assert not truncated
        if terminated:
            break
    return observations, rewards, infos


@pytest.fixture(scope="session")
def play():
    """``play(env, rng, seed=, index=)``: one episode with masked random actions."""
    return _play


@pytest.fixture(scope="session")
def f64_pair():
    return shared_pair("tiny-random", "cpu", "float64")


@pytest.fixture(scope="session")
def gsm_pair():
    """The bundled ``gsm`` pair on the CPU (the env module's cached copy)."""
    return shared_pair("gsm", "cpu")


@pytest.fixture(scope="session")
def prompt_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    return str(path)


@pytest.fixture(scope="session")
def trace_path(f64_pair, prompt_file, tmp_path_factory):
    """``trace_path(width)``: a trace of the float64 pair on the prompt file, recorded once per width."""

    def make(width: int) -> str:
        if width not in _traces:
            ids = [f64_pair.encode(p) for p in PROMPTS]
            trace = record_trace(
                f64_pair,
                ids,
                max_new_tokens=MAX_NEW,
                width=width,
                max_depth=MAX_DEPTH,
                meta={"prompts": prompt_file, "split": "heldout"},
                progress=False,
            )
            _traces[width] = str(trace.save(tmp_path_factory.mktemp("traces") / f"w{width}.npz"))
        return _traces[width]

    return make


@pytest.fixture
def live_kwargs(prompt_file):
    return {**LIVE, "prompts": prompt_file}


@pytest.fixture
def replay_env(trace_path, dv):
    """``replay_env(**kwargs)``: a DraftVerify env replaying the fixtures' trace of ``width`` (to
    ``dv.max_depth`` unless ``max_depth=`` says less)."""

    def make(**kwargs):
        width = kwargs.pop("width", 1)
        kwargs = {"max_depth": dv.max_depth, "max_new_tokens": dv.max_new, **kwargs}
        return gym.make("SpecGym/DraftVerify-v0", backend="replay", traces=trace_path(width), width=width, **kwargs)

    return make


# -- Arbitration -----------------------------------------------------------------------------
ARBITRATION_ITEMS = {"gsm": 8, "tiny-random": 4}  # items per record: gsm's trees are small, tiny-random's large
_branches: dict[tuple, str] = {}


def arbitration_kwargs(env_id: str, **overrides) -> dict:
    """A registered Arbitration id's kwargs on the CPU with the fixtures' item count (``overrides`` win)."""
    default_pair = inspect.signature(ArbitrationEnv).parameters["pair"].default
    kwargs = {"pair": default_pair, **gym.spec(env_id).kwargs, "device": "cpu"}
    kwargs["n_items"] = ARBITRATION_ITEMS[kwargs["pair"]]
    return {**kwargs, **overrides}


@pytest.fixture(scope="session")
def arbitration_env_kwargs():
    """``arbitration_env_kwargs(env_id, **overrides)``: see :func:`arbitration_kwargs`."""
    return arbitration_kwargs


@pytest.fixture(scope="session")
def branch_record(tmp_path_factory):
    """``branch_record(max_nodes=, chunk=, tag=, **env_kwargs)``: the path of a branch record of
    ``ArbitrationEnv(**env_kwargs)``'s items, recorded once per arguments (``tag`` names a copy of
    its own, for tests that must not see another test's on-demand grafts)."""

    def make(*, max_nodes: int = 32, chunk: int = 3, tag: str = "", **env_kwargs) -> str:
        env_kwargs.pop("speed_weight", None)  # not part of what a record holds
        key = (max_nodes, chunk, tag, *sorted((k, repr(v)) for k, v in env_kwargs.items()))
        if key not in _branches:
            env = ArbitrationEnv(**env_kwargs)
            out = tmp_path_factory.mktemp("branches") / "record.npz"
            record_env(env, out, max_nodes=max_nodes, chunk=chunk, progress=False)
            _branches[key] = str(out)
        return _branches[key]

    return make


@pytest.fixture
def offline_and_modelless(monkeypatch):
    """Any model load or network connection fails the test (the ids registered on bundled replay
    data promise neither)."""

    def refuse(*args, **kwargs):
        raise AssertionError("an env on bundled replay data must not load a model or reach the network")

    monkeypatch.setattr(ModelPair, "load", refuse)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", refuse)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    shared_pair.cache_clear()
    yield
    assert shared_pair.cache_info().currsize == 0
