"""The gsm recipe end to end at toy size: builds, records its recipe, resumes, and the registry
prefers a build in the data directory over the bundled copy."""

from __future__ import annotations

import json

import pytest

from envs.pairs import load_pair
from envs.pairs.gsm import MathPairConfig, ModelShape, build_math_pair, is_complete
from envs.tasks.math import chain_solution, extract_answer, generator_items, is_correct

TOY = MathPairConfig(
    target=ModelShape(1, 32, 2),
    draft=ModelShape(1, 16, 2),
    target_steps=3,
    draft_steps=2,
    batch_size=4,
    eval_items=2,
    checkpoint_seconds=0.0,
)


def test_toy_build_records_its_recipe_and_is_reused(tmp_path, monkeypatch):
    target, draft = build_math_pair(tmp_path / "pairs" / "gsm", seed=1, progress=False, config=TOY)
    root = tmp_path / "pairs" / "gsm"
    assert is_complete(root) and (root / "README.md").is_file()
    recipe = json.loads((root / "recipe.json").read_text())
    assert recipe["seed"] == 1 and recipe["config"]["target_steps"] == 3
    assert {"target_accuracy", "draft_accuracy", "draft_right_target_wrong", "n_items"} <= set(recipe["quality"])
    assert (root / "build" / "target-seed1-steps3.pt").is_file()  # the resumable checkpoint
    mtime = (target / "model.safetensors").stat().st_mtime
    assert build_math_pair(root, seed=1, progress=False, config=TOY) == (target, draft)
    assert (target / "model.safetensors").stat().st_mtime == mtime  # complete: not rebuilt

    monkeypatch.setenv("SPECGYM_DATA", str(tmp_path))
    pair = load_pair("gsm", device="cpu")
    assert pair.target.config.hidden_size == 32  # the data directory's build, not the bundled one


def test_a_half_written_marker_means_an_unfinished_build(tmp_path):
    """The recipe is the build's completion marker, written whole (temporary name, then rename): a torn
    one (from an older SpecGym, or a full disk) reads as unfinished, and the build runs again."""
    root = tmp_path / "pairs" / "gsm"
    build_math_pair(root, seed=1, progress=False, config=TOY)
    assert not list(root.glob(".*.part"))
    marker = root / "recipe.json"
    marker.write_text(marker.read_text()[:100])
    assert not is_complete(root)
    build_math_pair(root, seed=1, progress=False, config=TOY)
    assert is_complete(root) and json.loads(marker.read_text())["complete"] is True


def test_an_interrupted_model_save_leaves_no_half_written_folder(tmp_path, monkeypatch):
    """Each model folder is written beside its place and renamed in: Ctrl-C while saving leaves no
    target folder (and no temporary one), and the next build completes."""
    from transformers import PreTrainedTokenizerBase

    root = tmp_path / "pairs" / "gsm"
    save = PreTrainedTokenizerBase.save_pretrained

    def interrupted(self, *args, **kwargs):
        save(self, *args, **kwargs)
        raise KeyboardInterrupt  # after the weights and tokenizer of the target are half in place

    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_math_pair(root, seed=1, progress=False, config=TOY)
    assert not (root / "target").exists() and not list(root.glob(".*.part")) and not is_complete(root)
    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", save)
    target, draft = build_math_pair(root, seed=1, progress=False, config=TOY)
    assert is_complete(root) and (target / "tokenizer.json").is_file() and (draft / "model.safetensors").is_file()
    assert not list(root.glob(".*.part"))


def test_bundled_pair_loads_without_a_build(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECGYM_DATA", str(tmp_path))  # empty
    pair = load_pair("gsm", device="cpu")
    assert pair.target.config.hidden_size == 128 and pair.vocab_size == 257


@pytest.mark.parametrize(("expression", "answer"), [("1 + 8 + 9 + 9", "27"), ("12 - 30 + 5", "-13")])
def test_chain_solution(expression, answer):
    text, value = chain_solution(expression)
    assert value == answer and extract_answer(text) == answer and text.count("\n") == expression.count(" ") // 2


def test_full_marks_only():
    item = generator_items("chain_sum", 1, 9000)[0]
    assert is_correct(item, f"#### {item.answer}")
    assert not is_correct(item, f"#### {item.answer}0")  # reasoning-gym gives partial credit here
    assert not is_correct(item, "no answer line")
