"""Hyperparameter files: default, then the env id's entry, then the pair's ``@pair`` entry."""

from __future__ import annotations

import pytest

from envs.specdec.errors import SpecGymError
from experiments.training.config import CONFIG_DIR, load_config


def test_layers_default_env_then_pair(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "default: {n_timesteps: 10, gamma: 0.9, env_kwargs: {reward: a, width: 2}}\n"
        "Env-v0: {gamma: 0.5, env_kwargs: {reward: b}}\n"
        "'@big': {n_timesteps: 99, env_kwargs: {width: 4}}\n"
    )
    assert load_config(path, "Env-v0") == {"n_timesteps": 10, "gamma": 0.5, "env_kwargs": {"reward": "b", "width": 2}}
    cfg = load_config(path, "Env-v0", "big")
    assert cfg == {"n_timesteps": 99, "gamma": 0.5, "env_kwargs": {"reward": "b", "width": 4}}
    assert load_config(path, "Env-v0", "other") == load_config(path, "Env-v0")


def test_shipped_configs_load_for_every_pair() -> None:
    for role in ("Draft", "Verify"):
        smollm2 = load_config(CONFIG_DIR / "draft_verify.yaml", f"SpecGym/DraftVerify-{role}-v0", "smollm2-135m")
        gsm = load_config(CONFIG_DIR / "draft_verify.yaml", f"SpecGym/DraftVerify-{role}-v0", "gsm")
        assert smollm2["n_timesteps"] > gsm["n_timesteps"] and smollm2["gamma"] == gsm["gamma"]


def test_unknown_key_is_named(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("'@p': {n_timestep: 5}\n")
    with pytest.raises(SpecGymError, match="n_timestep"):
        load_config(path, "Env-v0", "p")


def test_wrong_types_a_list_and_unknown_env_kwargs_are_named(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text('default: {n_steps: "lots"}\n')
    with pytest.raises(SpecGymError, match=r"c.yaml: default: n_steps must be an integer >= 1, got 'lots'"):
        load_config(path, "Env-v0")
    path.write_text("Env-v0: {learning_rate: 3e-4}\n")  # YAML 1.1 reads it as text
    with pytest.raises(SpecGymError, match="learning_rate must be a number.*write 3.0e-4"):
        load_config(path, "Env-v0")
    path.write_text("- n_steps: 64\n")
    with pytest.raises(SpecGymError, match="c.yaml: the top level must be a mapping"):
        load_config(path, "Env-v0")
    path.write_text("default: {env_kwargs: {widht: 2}}\n")
    with pytest.raises(SpecGymError, match=r"c.yaml: unknown env_kwargs key\(s\) \['widht'\] for SpecGym/DraftVerify"):
        load_config(path, "SpecGym/DraftVerify-Draft-v0")
    # counts written as floats are read as the integers they are; an unregistered id's kwargs are not checked
    path.write_text("default: {n_timesteps: 40000.0, env_kwargs: {anything: 1}}\n")
    assert load_config(path, "Env-v0")["n_timesteps"] == 40000
