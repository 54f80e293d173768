"""The smollm2-math recipe on tiny models: its data, a LoRA step, resume, corrupt weights, the whole
build and its shipped weights; the real SmolLM2 pair is slow-marked."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from envs.pairs.gsm import collate
from envs.pairs.smollm2_math import build_math_pair, is_complete
from envs.pairs.smollm2_math import train as train_module
from envs.pairs.smollm2_math.config import MathRecipeConfig
from envs.pairs.smollm2_math.data import answer_loss, chat_rows, training_items
from envs.pairs.smollm2_math.ship import assemble_shipped, export, is_current
from envs.pairs.smollm2_math.train import freeze_embedding, train_stage, with_lora
from envs.pairs.smollm2_math.weights import (
    BASE_NAME,
    DRAFT_LAYERS,
    LAYERS_FILE,
    LORA,
    load_draft_layers,
    merged_target,
    plain_model,
    save_draft_layers,
    save_lora,
)
from envs.pairs.tiny import tiny_random_pair
from envs.specdec import SpecGymError, shortlist
from envs.specdec.pair import ModelPair
from envs.tasks.math import ANSWER_MARK, extract_answer, generator_items, prompt_text
from envs.tasks.splits import SEEDS

CFG = replace(
    MathRecipeConfig(),
    n_train=64,
    n_validation=2,
    n_heldout=3,
    max_new_tokens=8,
    batch_size=4,
    lora_rank=4,
    lora_modules=("q_proj", "v_proj", "up_proj"),
    target_steps=4,
    draft_steps=3,
    target_lr=1e-2,
    draft_lr=1e-2,
    warmup_steps=1,
)


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """A tiny target and draft saved like the real bases: byte tokenizer, the draft with a shortlist."""
    root = tmp_path_factory.mktemp("bases")
    pair = tiny_random_pair(0)
    for role, model in (("target", pair.target), ("draft", pair.draft)):
        model.save_pretrained(root / role)
        pair.tokenizer.save_pretrained(root / role)
    shortlist.save(torch.arange(0, pair.vocab_size, 2), root / "draft", "every other id (test)")
    return root / "target", root / "draft", pair.tokenizer


@pytest.fixture(scope="module")
def rows(bases):
    return chat_rows(bases[2], training_items(CFG))


def test_training_items_are_gsm8k_format_deterministic_and_never_a_split_item():
    items = training_items(CFG)
    assert items == training_items(CFG)  # same seed, same items
    assert 0 < len(items) <= CFG.n_train
    for x in items:
        assert x.solution.splitlines()[-1] == f"{ANSWER_MARK} {x.answer}"
        assert extract_answer(x.solution) == x.answer
        assert len(x.question.split("problem:")[1].split()) in (6, 8)  # 3-4 terms, "=" last
    splits = {x.question for seed in SEEDS.values() for x in generator_items(CFG.task, 500, seed)}
    assert not splits & {x.question for x in items}
    assert training_items(CFG, seed_base=7) != items  # the seed decides


def test_rows_are_the_runtime_prompt_then_the_answer(bases, rows):
    tok = bases[2]
    item = training_items(CFG)[0]
    prompt, answer = rows[0]
    assert prompt == tok.encode(prompt_text(item.question))  # no chat template: plain text, as encode() gives
    assert answer[-1] == tok.eos_token_id
    assert tok.decode(answer[:-1]) == item.solution


def test_answer_loss_is_cross_entropy_on_the_answer_tokens(bases, rows):
    model = plain_model(bases[0])
    ids, labels = collate(rows[:3], bases[2].eos_token_id)
    logits = model(input_ids=ids).logits[:, :-1]
    reference = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1))
    assert torch.allclose(answer_loss(model, ids, labels), reference, atol=1e-5)
    everything = torch.arange(model.config.vocab_size)
    assert torch.allclose(answer_loss(model, ids, labels, everything), reference, atol=1e-5)
    # a shortlist: softmax over its ids, answers outside it skipped
    evens = torch.arange(0, model.config.vocab_size, 2)
    keep = (labels[:, 1:] >= 0) & (labels[:, 1:] % 2 == 0)
    on_list = torch.where(keep, labels[:, 1:] // 2, -100)
    short = logits[..., evens].reshape(-1, len(evens))
    expected = torch.nn.functional.cross_entropy(short, on_list.reshape(-1))
    assert torch.allclose(answer_loss(model, ids, labels, evens), expected, atol=1e-5)


def test_a_lora_run_lowers_the_loss_and_trains_only_the_adapter(bases, rows, tmp_path):
    torch.manual_seed(0)
    model = with_lora(plain_model(bases[0]), CFG)
    base_weights = {n: p.clone() for n, p in model.named_parameters() if not p.requires_grad}
    batch = collate(rows[:8], bases[2].eos_token_id)
    lm = model.get_base_model()
    before = answer_loss(lm, *batch).item()
    cfg = replace(CFG, batch_size=8)
    train_stage(
        model, rows[:8], cfg, steps=15, lr=1e-2, seed=0, ckpt=tmp_path / "c.pt", pad=bases[2].eos_token_id,
        desc="t", progress=False,
    )  # fmt: skip
    assert answer_loss(lm, *batch).item() < before
    assert all(torch.equal(p, base_weights[n]) for n, p in model.named_parameters() if not p.requires_grad)
    saved = torch.load(tmp_path / "c.pt", weights_only=False)["model"]
    assert saved and all("lora_" in k for k in saved)  # the checkpoint holds the adapter alone


def _stage(bases, rows, ckpt, stop_at=None, monkeypatch=None):
    if stop_at is not None:
        calls = iter(range(10_000))
        real = train_module.answer_loss

        def interrupting(*args, **kwargs):
            if next(calls) == stop_at:
                raise KeyboardInterrupt
            return real(*args, **kwargs)

        monkeypatch.setattr(train_module, "answer_loss", interrupting)
    torch.manual_seed(0)
    model = with_lora(plain_model(bases[0]), CFG)
    try:
        train_stage(
            model, rows, CFG, steps=6, lr=1e-2, seed=3, ckpt=ckpt, pad=bases[2].eos_token_id, desc="t", progress=False
        )
    finally:
        if monkeypatch is not None:
            monkeypatch.undo()
    return model


def test_an_interrupted_stage_resumes_to_the_uninterrupted_result(bases, rows, tmp_path, monkeypatch):
    with pytest.raises(KeyboardInterrupt):
        _stage(bases, rows, tmp_path / "a.pt", stop_at=3, monkeypatch=monkeypatch)
    assert torch.load(tmp_path / "a.pt", weights_only=False)["step"] == 3
    resumed = _stage(bases, rows, tmp_path / "a.pt")
    straight = _stage(bases, rows, tmp_path / "b.pt")
    for (name, a), (_, b) in zip(resumed.named_parameters(), straight.named_parameters(), strict=True):
        assert torch.equal(a, b), name


def test_draft_training_keeps_its_embedding_and_saves_only_its_layers(bases, rows, tmp_path):
    draft = plain_model(bases[1])
    embedding = draft.get_input_embeddings().weight.clone()
    freeze_embedding(draft)
    vocab = shortlist.read(bases[1] / shortlist.FILENAME, draft.config.vocab_size)
    train_stage(
        draft, rows, CFG, steps=3, lr=1e-2, seed=1, ckpt=tmp_path / "d.pt", pad=bases[2].eos_token_id,
        desc="t", progress=False, vocab=vocab,
    )  # fmt: skip
    assert torch.equal(draft.get_input_embeddings().weight, embedding)
    save_draft_layers(draft, tmp_path / DRAFT_LAYERS)
    fresh = load_draft_layers(plain_model(bases[1]), tmp_path / DRAFT_LAYERS)
    for (name, a), (_, b) in zip(fresh.named_parameters(), draft.named_parameters(), strict=True):
        assert torch.equal(a, b if name == "model.embed_tokens.weight" else b.half().float()), name  # float16 on disk


def test_a_missing_or_corrupt_adapter_is_named(bases, tmp_path):
    model = with_lora(plain_model(bases[0]), CFG)
    save_lora(model, tmp_path / LORA)
    weights = tmp_path / LORA / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(SpecGymError, match=r"adapter_model.safetensors is corrupt.*build_pair smollm2-math"):
        merged_target(plain_model(bases[0]), tmp_path / LORA)
    weights.unlink()
    with pytest.raises(SpecGymError, match=r"adapter_model.safetensors is missing"):
        merged_target(plain_model(bases[0]), tmp_path / LORA)
    (tmp_path / LORA / "adapter_config.json").write_text("{not json")
    with pytest.raises(SpecGymError, match=r"adapter_config.json is missing or corrupt"):
        merged_target(plain_model(bases[0]), tmp_path / LORA)


def test_the_whole_build_records_its_recipe_is_reused_and_ships(bases, tmp_path):
    target_dir, draft_dir = build_math_pair(tmp_path / "pair", bases[0], bases[1], progress=False, config=CFG)
    assert is_complete(tmp_path / "pair")
    recipe = json.loads((tmp_path / "pair" / "recipe.json").read_text())
    assert recipe["quality"]["heldout"]["n_items"] == CFG.n_heldout
    assert recipe["config"]["target_steps"] == CFG.target_steps
    assert (draft_dir / shortlist.FILENAME).is_file()
    pair = ModelPair.load(str(target_dir), str(draft_dir), device="cpu", dtype="float32", name="t")
    assert pair.vocab_size == plain_model(bases[0]).config.vocab_size
    stamp = (target_dir / "model.safetensors").stat().st_mtime_ns
    build_math_pair(tmp_path / "pair", bases[0], bases[1], progress=False, config=CFG)  # complete: nothing redone
    assert (target_dir / "model.safetensors").stat().st_mtime_ns == stamp

    shipped = export(tmp_path / "pair", tmp_path / "assets")
    size = sum(f.stat().st_size for f in shipped.rglob("*") if f.is_file())
    assert size < 2e6
    # the shipped adapter names its base, not the training machine's path (peft warns at a renamed one)
    adapter = json.loads((shipped / "target-lora" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == BASE_NAME
    assemble_shipped(shipped, bases[0], bases[1], tmp_path / "fresh")
    assert is_complete(tmp_path / "fresh")
    again = ModelPair.load(str(tmp_path / "fresh" / "target"), str(tmp_path / "fresh" / "draft"), dtype="float32")
    for a, b in ((pair.target, again.target), (pair.draft, again.draft)):
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
            assert torch.equal(x, y), name
    assert is_current(tmp_path / "fresh", shipped) and is_current(tmp_path / "pair", shipped)

    # a new shipping of the draft's layers: the older assembly is stale, and assembling again
    # replaces the draft alone (the adapter did not change)
    from safetensors.torch import load_file, save_file

    layers = load_file(str(shipped / DRAFT_LAYERS / LAYERS_FILE))
    layers = {k: v + 1 for k, v in layers.items()}
    save_file(layers, str(shipped / DRAFT_LAYERS / LAYERS_FILE))
    recipe["built_at"] = "later"
    (shipped / "recipe.json").write_text(json.dumps(recipe))
    assert not is_current(tmp_path / "fresh", shipped)
    assert is_current(tmp_path / "pair", shipped)  # a build of this machine's own is kept
    stamp = (tmp_path / "fresh" / "target" / "model.safetensors").stat().st_mtime_ns
    assemble_shipped(shipped, bases[0], bases[1], tmp_path / "fresh")
    assert is_current(tmp_path / "fresh", shipped)
    assert (tmp_path / "fresh" / "target" / "model.safetensors").stat().st_mtime_ns == stamp
    renewed = ModelPair.load(str(tmp_path / "fresh" / "target"), str(tmp_path / "fresh" / "draft"), dtype="float32")
    name = next(n for n in layers if ".layers." in n)
    assert torch.equal(renewed.draft.state_dict()[name], layers[name].float()), name


def test_an_interrupted_build_resumes(bases, tmp_path, monkeypatch):
    real = train_module.answer_loss
    calls = iter(range(10_000))

    def interrupting(*args, **kwargs):
        if next(calls) == CFG.target_steps + 1:  # inside the draft's stage, after the adapter was saved
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "answer_loss", interrupting)
    with pytest.raises(KeyboardInterrupt):
        build_math_pair(tmp_path / "pair", bases[0], bases[1], progress=False, config=CFG)
    monkeypatch.undo()
    assert (tmp_path / "pair" / "weights" / LORA / "adapter_model.safetensors").is_file()
    assert not (tmp_path / "pair" / "weights" / DRAFT_LAYERS / LAYERS_FILE).exists()
    assert not is_complete(tmp_path / "pair")
    build_math_pair(tmp_path / "pair", bases[0], bases[1], progress=False, config=CFG)
    assert is_complete(tmp_path / "pair")


def test_build_pair_names_a_corrupt_shipped_or_built_adapter(bases, tmp_path):
    build_math_pair(tmp_path / "pair", bases[0], bases[1], progress=False, config=CFG)
    shipped = export(tmp_path / "pair", tmp_path / "assets")
    (shipped / LORA / "adapter_model.safetensors").write_bytes(b"garbage")
    with pytest.raises(SpecGymError, match="is corrupt"):
        assemble_shipped(shipped, bases[0], bases[1], tmp_path / "fresh")
    assert not is_complete(tmp_path / "fresh")


def test_the_pair_is_registered_with_its_task_and_builder():
    from envs.pairs.build import BUILDERS
    from envs.pairs.registry import pair_spec, task_chat

    spec = pair_spec("smollm2-math")
    assert spec is not None and spec.task == "chain_sum" and spec.dtype == "fast"
    assert "smollm2-math" in BUILDERS
    # its models were fine-tuned on chat-template prompts; the byte-level pairs have no template
    assert task_chat("smollm2-math") and not task_chat("gsm") and not task_chat("/some/target")
