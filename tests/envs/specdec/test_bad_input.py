"""Bad input: one clear SpecGymError that names the fix, never a deep traceback or garbage."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from envs.pairs import load_pair
from envs.pairs.tiny import byte_tokenizer, tiny_config, tiny_random_pair
from envs.specdec import ModelPair, SamplingConfig, SpecGymError, SpeculativeDecoder
from envs.specdec.trace import Trace, record_trace


def test_different_vocabulary_sizes():
    target = LlamaForCausalLM(tiny_config(64, 1))
    draft = LlamaForCausalLM(tiny_config(32, 1))
    with pytest.raises(SpecGymError, match="vocabulary.*same model family|model family"):
        ModelPair(target=target, draft=draft, tokenizer=None, name="bad")


def test_tokenizers_that_map_different_ids(tmp_path):
    """Same vocabulary size, different id mapping: caught from the tokenizers."""
    tok = byte_tokenizer()
    vocab = tok.get_vocab()
    a, b = sorted(vocab)[:2]
    mapping = dict(vocab)
    mapping[a], mapping[b] = vocab[b], vocab[a]
    raw = Tokenizer(models.BPE(vocab=mapping, merges=[]))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    swapped = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|endoftext|>")
    for name, t in (("target", tok), ("draft", swapped)):
        LlamaForCausalLM(tiny_config(len(tok), 1)).save_pretrained(tmp_path / name)
        t.save_pretrained(tmp_path / name)
    with pytest.raises(SpecGymError, match="tokenizers map different ids"):
        ModelPair.load(str(tmp_path / "target"), str(tmp_path / "draft"), device="cpu")


def test_tokens_past_the_vocabulary_do_not_decide_the_pairing(tmp_path):
    """A tokenizer with extra tokens no logit can reach (transformers 5.0 adds infill tokens to a
    GGUF conversion) still pairs; one that maps a reachable id differently does not."""
    for name in ("target", "draft"):
        tok = byte_tokenizer()
        LlamaForCausalLM(tiny_config(len(tok), 1)).save_pretrained(tmp_path / name)
        if name == "target":
            tok.add_tokens(["<FILL_ME>"], special_tokens=True)
            assert tok.get_vocab()["<FILL_ME>"] == len(tok) - 1
        tok.save_pretrained(tmp_path / name)
    pair = ModelPair.load(str(tmp_path / "target"), str(tmp_path / "draft"), device="cpu")
    assert pair.vocab_size == len(byte_tokenizer())


def test_local_pair_loads(tmp_path):
    """The same path through ModelPair.load works when the pair is sound (so the errors above mean it)."""
    tok = byte_tokenizer()
    for name in ("target", "draft"):
        LlamaForCausalLM(tiny_config(len(tok), 1)).save_pretrained(tmp_path / name)
        tok.save_pretrained(tmp_path / name)
    pair = ModelPair.load(str(tmp_path / "target"), str(tmp_path / "draft"), device="cpu")
    assert pair.vocab_size == len(tok) and pair.describe()["target"] == str(tmp_path / "target")


@pytest.mark.parametrize("path", ["/nonexistent/model-dir", "nobody/no-such-model-anywhere"])
def test_model_not_found_offline(path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SpecGymError, match="could not be loaded offline.*build_pair"):
        ModelPair.load(path, path, device="cpu")


def test_unknown_pair_lists_known_ones():
    with pytest.raises(SpecGymError, match="known pairs: .*smollm2-135m.*tiny-random"):
        load_pair("no-such-pair")


def test_half_a_custom_pair():
    with pytest.raises(SpecGymError, match="both --target and --draft"):
        load_pair(target="some/model")


def test_prompt_longer_than_context(text_pair):
    dec = SpeculativeDecoder(text_pair)
    with pytest.raises(SpecGymError, match="does not fit the 512-token context window"):
        dec.generate([1] * 600, 8, k=2)
    with pytest.raises(SpecGymError, match="does not fit"):
        dec.generate_target([1] * 512, 8)


def test_empty_and_out_of_vocab_prompts(text_pair):
    dec = SpeculativeDecoder(text_pair)
    with pytest.raises(SpecGymError, match="empty prompt"):
        dec.generate([], 8, k=2)
    with pytest.raises(SpecGymError, match="token ids must lie in 0..256"):
        dec.generate([1, 10_000], 8, k=2)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ({"k": 0}, "draft length / tree depth must be an integer in 1..32"),
        ({"k": 33}, "in 1..32"),
        ({"k": 2.5}, "in 1..32"),
        ({"depth": 3, "width": 0}, "tree width must be an integer in 1..16"),
        ({"depth": 3, "width": 17}, "in 1..16"),
        ({"depth": 2, "width": 2, "n_verify": 5}, r"verification size must be in 0..depth\*width=4"),
        ({"depth": 2, "width": 2, "n_verify": -1}, "verification size"),
        ({}, "give k"),
    ],
)
def test_draft_shape_out_of_range(text_pair, shape, message):
    with pytest.raises(SpecGymError, match=message):
        SpeculativeDecoder(text_pair).generate([1, 2, 3], 8, **shape)


def test_bad_sampling_settings():
    with pytest.raises(SpecGymError, match="temperature must be >= 0"):
        SamplingConfig(temperature=-1.0)
    with pytest.raises(SpecGymError, match=r"top_p must be in \(0, 1\]"):
        SamplingConfig(temperature=1.0, top_p=0.0)


@pytest.mark.parametrize("which", ["target", "draft"])
def test_nan_logits(which):
    pair = tiny_random_pair(0)
    model = getattr(pair, which)
    with torch.no_grad():
        model.lm_head.weight[5, 0] = float("nan")
    with pytest.raises(SpecGymError, match=f"the {which} model produced NaN or inf logits.*float32"):
        SpeculativeDecoder(pair).generate([1, 2, 3], 8, k=3)


def test_finished_generation_cannot_continue(text_pair):
    dec = SpeculativeDecoder(text_pair)
    state = dec.start([1, 2, 3], 1)
    dec.cycle(state, 2)
    assert state.done
    with pytest.raises(SpecGymError, match="already finished"):
        dec.cycle(state, 2)


def test_cli_bad_input_is_one_line():
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.benchmark", "engine", "--pair", "no-such-pair"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "Warning" not in ln]
    assert lines[-1].startswith("error: unknown pair 'no-such-pair'; known pairs:")
    assert "Traceback" not in proc.stderr


# -- damaged trace files ---------------------------------------------------------------------------------------


def _damage(src: Path, dst: Path, how: str) -> Path:
    data = src.read_bytes()
    if how == "truncated":
        dst.write_bytes(data[: len(data) // 2])
    elif how == "corrupt":  # bytes overwritten inside the compressed arrays, the zip index intact
        mid = len(data) // 2
        dst.write_bytes(data[:mid] + bytes(256) + data[mid + 256 :])
    elif how == "garbage":  # numpy's own error would talk about allow_pickle
        dst.write_bytes(b"this is not a trace\n" * 50)
    elif how == "npy":
        with dst.open("wb") as f:
            np.save(f, np.arange(5))
    elif how == "foreign":
        with dst.open("wb") as f:
            np.savez(f, x=np.arange(5))
    return dst


@pytest.mark.parametrize("how", ["truncated", "corrupt", "garbage", "npy", "foreign"])
def test_damaged_trace_is_one_line_naming_the_file(trace_path, tmp_path, how):
    path = _damage(Path(trace_path(1)), tmp_path / f"{how}.npz", how)
    loads = (Trace.load,) if how == "corrupt" else (Trace.load, Trace.load_meta)  # meta sits before the damage
    for load in loads:
        with pytest.raises(SpecGymError) as err:
            load(path)
        text = str(err.value)
        assert text.startswith(f"cannot read trace {str(path)!r}: ") and "\n" not in text
        assert "allow_pickle" not in text
        assert text.endswith(f"re-record it with python -m experiments.record_traces --pair NAME --out {path}")
        expected = "not a SpecGym trace" if how == "foreign" else "truncated or corrupt"
        assert expected in text


def test_trace_save_is_whole_or_absent(trace_path, tmp_path, monkeypatch):
    """The .npz is written last under a temporary name: an interrupted save leaves no .npz (and no
    temporary file), and the reader names what it left."""
    trace = Trace.load(trace_path(1))
    path = trace.save(tmp_path / "t.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json", "t.npz"]

    def interrupted(f, **arrays):
        f.write(b"PK\x03\x04 half an archive")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", interrupted)
    with pytest.raises(KeyboardInterrupt):
        trace.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json"]
    sidecar = r"t.npz' not found \(its sidecar '.*t.json' is there: a save was interrupted\); record one with "
    with pytest.raises(SpecGymError, match=sidecar + "python -m experiments.record_traces --pair tiny-random"):
        Trace.load(path)
    (tmp_path / ".t.npz.k3j2.part").write_bytes(b"PK")  # what a killed process leaves
    with pytest.raises(
        SpecGymError, match=r"not found \(an interrupted save left '.*\.t\.npz\.k3j2\.part'; delete it\)"
    ):
        Trace.load_meta(path)


# -- recording: bad settings refused before any model work ---------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_new_tokens": -4}, "--max-new-tokens must be an integer >= 1, got -4"),
        ({"max_new_tokens": 0}, "--max-new-tokens must be an integer >= 1, got 0"),
        ({"n_prompts": 0}, "--n-prompts must be an integer >= 1, got 0"),
        ({"width": 0}, r"--width \(tree width\) must be an integer in 1..16, got 0"),
        ({"width": 17}, r"--width .* in 1..16, got 17"),
        ({"max_depth": 0}, r"--max-depth \(tree depth\) must be an integer in 1..32, got 0"),
        ({"max_depth": 40}, r"--max-depth .* in 1..32, got 40"),
        ({"chunk": 0}, "--chunk must be an integer >= 1, got 0"),
        ({"out": "trace.bin"}, "--out 'trace.bin' must end in .npz"),
    ],
)
def test_record_traces_refuses_bad_settings_up_front(monkeypatch, tmp_path, changes, message):
    from experiments import record_traces

    def no_models(*args, **kwargs):
        raise AssertionError("a model was loaded before the settings were checked")

    monkeypatch.setattr(record_traces, "pair_from_args", no_models)
    settings = record_traces.TraceSettings(pair="tiny-random", out=str(tmp_path / "t.npz"))
    with pytest.raises(SpecGymError, match=message):
        record_traces.record(replace(settings, **changes))
    assert not list(tmp_path.iterdir())


def test_record_trace_refuses_negative_lengths(text_pair):
    with pytest.raises(SpecGymError, match="--max-new-tokens must be an integer >= 1, got -4"):
        record_trace(text_pair, [[1, 2, 3]], max_new_tokens=-4, progress=False)


# -- damaged model directories -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("weights-cut", r"has a truncated or corrupt '.*/target/model.safetensors' \(Error while deserializing"),
        ("weights-tiny", r"has a truncated or corrupt '.*/target/model.safetensors' \(.*header too small"),
        ("config-cut", r"has a corrupt '.*/target/config.json' \(not a valid JSON object; truncated\?\)"),
        ("config-list", r"has a corrupt '.*/target/config.json'"),
        ("weights-gone", r"has no weights \(model.safetensors\)"),
        ("tokenizer-cut", r"has a corrupt '.*/target/tokenizer.json' \(not a valid JSON object; truncated\?\)"),
        ("tokenizer-config-list", r"has a corrupt '.*/target/tokenizer_config.json'"),
    ],
)
def test_damaged_model_directory_names_the_file(tmp_path, damage, message):
    tok = byte_tokenizer()
    for name in ("target", "draft"):
        LlamaForCausalLM(tiny_config(len(tok), 1)).save_pretrained(tmp_path / name)
        tok.save_pretrained(tmp_path / name)
    weights, config = tmp_path / "target" / "model.safetensors", tmp_path / "target" / "config.json"
    if damage == "weights-cut":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "weights-tiny":
        weights.write_bytes(weights.read_bytes()[:5])
    elif damage == "config-cut":
        config.write_text(config.read_text()[:40])
    elif damage == "config-list":
        config.write_text("[]")
    elif damage == "weights-gone":
        weights.unlink()
    elif damage == "tokenizer-cut":  # else the pair loaded without a tokenizer and failed at its first prompt
        tokenizer = tmp_path / "target" / "tokenizer.json"
        tokenizer.write_text(tokenizer.read_text()[:300])
    elif damage == "tokenizer-config-list":
        (tmp_path / "target" / "tokenizer_config.json").write_text("[]")
    with pytest.raises(SpecGymError, match=f"^target model directory '.*/target' {message}") as err:
        ModelPair.load(str(tmp_path / "target"), str(tmp_path / "draft"), device="cpu")
    text = str(err.value)
    assert "\n" not in text and "pass a local directory" not in text
    assert text.endswith(
        "rebuild it with python -m experiments.build_pair NAME --force, or delete it and fetch it again"
    )


def test_a_directory_that_holds_no_model(tmp_path):
    (tmp_path / "pair").mkdir()
    with pytest.raises(SpecGymError, match=r"^target model directory '.*/pair' has no config.json: pass the directory"):
        ModelPair.load(str(tmp_path / "pair"), str(tmp_path / "pair"), device="cpu")
