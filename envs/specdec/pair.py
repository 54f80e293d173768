"""ModelPair: a draft and a target causal LM that share one vocabulary."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from envs.specdec.errors import MODEL_DIR_FIX, SpecGymError

DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
}


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; else ``cpu``, ``cuda``, ``cuda:N`` (or ``mps`` where
    torch is built with it), refused with the valid choices unless this machine has it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, torch.device):
        device = str(device)
    mps = torch.backends.mps.is_built()
    if not (isinstance(device, str) and re.fullmatch(r"cpu|cuda(:\d+)?" + ("|mps" if mps else ""), device)):
        raise SpecGymError(f"unknown device {device!r}; choose auto, cpu, cuda or cuda:N{', mps' if mps else ''}")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SpecGymError(f"device {device!r} asked for but CUDA is not available; use --device cpu or auto")
        index, count = int(device.partition(":")[2] or 0), torch.cuda.device_count()
        if index >= count:
            raise SpecGymError(
                f"device {device!r} asked for but this machine has {count} CUDA device(s); "
                f"use cuda:0..cuda:{count - 1} or auto"
            )
    if device == "mps" and not torch.backends.mps.is_available():
        raise SpecGymError("device 'mps' asked for but MPS is not available on this machine; use --device cpu or auto")
    return torch.device(device)


def native_bf16_cpu() -> bool:
    """True when this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX, through oneDNN).

    There a bfloat16 forward of a few tokens costs about what one token does (the weights are
    read once and the arithmetic is cheap), as on a GPU; in float32 verifying 4 tokens costs
    1.6x a single-token step on the same CPU (benchmark cost).
    """
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``auto``/None: bfloat16 on CUDA, float32 on CPU (half is slow there); ``fast``: bfloat16
    on CUDA and on CPUs with native bfloat16 (:func:`native_bf16_cpu`), else float32."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "fast":
        return torch.bfloat16 if device.type == "cuda" or native_bf16_cpu() else torch.float32
    if dtype in (None, "auto"):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise SpecGymError(f"unknown dtype {dtype!r}; choose auto, fast or one of {sorted(DTYPES)}")
    return DTYPES[dtype]


# The tokenizer's own files, checked when a tokenizer does not load
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json")
# a directory with none of these holds no vocabulary to load
VOCAB_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "vocab.txt", "tokenizer.model", "spiece.model")


def _label(role: str) -> str:
    """``target model``, ``draft model``, or ``model`` (one model loaded alone)."""
    return "model" if role == "model" else f"{role} model"


def load_model(path: str, role: str, dtype: torch.dtype, device: torch.device) -> PreTrainedModel:
    """A causal LM from a local directory or the local Hugging Face cache (``role``: ``target``,
    ``draft`` or ``model``, for messages; a draft's or a lone model's ``shortlist.json`` is applied);
    a directory with a broken file is refused naming the file and the fix."""
    from transformers.utils import logging as hf_logging

    # local files load in a moment, and every env (each worker process) loads its pair: without
    # this, transformers' "Loading weights" bar prints twice per env; restored after the call
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True)
    except (OSError, ValueError, TypeError, KeyError, EOFError, RuntimeError, SafetensorError) as exc:
        if Path(path).is_dir():  # the directory is there: say which of its files is broken
            raise SpecGymError(f"{_label(role)} directory {path!r} {_damage(Path(path), exc)}") from None
        if not isinstance(exc, (OSError, ValueError)):
            raise
        raise SpecGymError(
            f"{_label(role)} {path!r} could not be loaded offline ({type(exc).__name__}); pass a local "
            "directory, a registered pair name (python -m experiments.build_pair --list), or a hub id "
            "already in the local Hugging Face cache"
        ) from None
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    if role != "target":  # a target scores the whole vocabulary, whatever its directory holds
        from envs.specdec import shortlist

        shortlist.maybe_apply(model, path)
    return model.to(device).eval()


def _damage(model_dir: Path, exc: BaseException) -> str:
    """What is wrong with a local model directory that did not load, and the fix: its first broken
    file (config.json, then each weights file), else the loader's own one-line error."""
    config = model_dir / "config.json"
    if not config.is_file():
        return "has no config.json: pass the directory that holds a model's config.json and weights"
    return f"{_broken_file(model_dir, config, exc)}; {MODEL_DIR_FIX}"


def _corrupt_json(file: Path) -> bool:
    """True when ``file`` does not read as a JSON object (truncated, garbage)."""
    try:
        return not isinstance(json.loads(file.read_text()), dict)
    except (OSError, ValueError):
        return True


def _broken_file(model_dir: Path, config: Path, exc: BaseException) -> str:
    if _corrupt_json(config):
        return f"has a corrupt {str(config)!r} (not a valid JSON object; truncated?)"
    weights = sorted(model_dir.glob("*.safetensors"))
    for file in weights:
        try:
            with safe_open(str(file), framework="pt") as f:
                f.keys()
        except (OSError, SafetensorError) as err:
            why = (str(err).strip().strip("'\"").splitlines() or [type(err).__name__])[0]
            return f"has a truncated or corrupt {str(file)!r} ({why})"
    if not weights and not any(model_dir.glob("pytorch_model*.bin")):
        return "has no weights (model.safetensors)"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"could not be loaded ({type(exc).__name__}{': ' + first if first else ''})"


def load_tokenizer(path: str, role: str = "model") -> PreTrainedTokenizerBase | None:
    """The tokenizer of a model directory or cached hub id; None when there is none to load (a
    broken config.json: :func:`load_model` names it). A tokenizer file that is not valid JSON is
    refused naming it and the fix (else the pair would load without a tokenizer and fail later)."""
    model_dir = Path(path)
    if model_dir.is_dir() and not any((model_dir / name).is_file() for name in VOCAB_FILES):
        # transformers 5.0 builds an empty tokenizer from config.json's model_type here
        return None
    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:  # AttributeError: a JSON list
        for name in TOKENIZER_FILES if model_dir.is_dir() else ():
            if (model_dir / name).is_file() and _corrupt_json(model_dir / name):
                raise SpecGymError(
                    f"{_label(role)} directory {path!r} has a corrupt {str(model_dir / name)!r} (not a valid JSON "
                    f"object; truncated?); {MODEL_DIR_FIX}"
                ) from None
        if isinstance(exc, AttributeError):  # not a broken file: a bug to see
            raise
        return None


def _reachable(tokenizer: PreTrainedTokenizerBase, n: int) -> dict[str, int]:
    """The tokenizer's vocabulary restricted to ids below ``n`` (the logits' width)."""
    return {token: i for token, i in tokenizer.get_vocab().items() if i < n}


def encode_prompt(tokenizer, text: str, *, chat: bool = True) -> list[int]:
    """Token ids of a prompt, as one user turn of the chat template (ending with the assistant's
    header, where the answer starts) when the tokenizer has one and ``chat``; else plain text."""
    if chat and getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True
        )
        ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
        return list(ids)
    return tokenizer.encode(text)


@dataclass
class ModelPair:
    """A target model, the draft that speculates for it, and their shared tokenizer.

    Build with :meth:`load` (hub ids / local paths), :func:`envs.pairs.registry.load_pair`
    (registered names such as ``tiny-random``) or directly from in-memory models (tests).
    """

    target: PreTrainedModel
    draft: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase | None
    name: str
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.check_compatible()
        for model in (self.target, self.draft):
            model.eval()
            model.requires_grad_(False)

    @classmethod
    def load(
        cls,
        target: str,
        draft: str,
        *,
        device: str = "auto",
        dtype: str | None = None,
        name: str | None = None,
    ) -> ModelPair:
        """Load two ``AutoModelForCausalLM`` offline (``local_files_only``) and check they pair."""
        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev)
        tok_t, tok_d = load_tokenizer(target, "target"), load_tokenizer(draft, "draft")
        target_model, draft_model = load_model(target, "target", dt, dev), load_model(draft, "draft", dt, dev)
        # only ids a logit can reach decide whether two tokenizers pair: transformers 5.0's GGUF
        # conversion adds CodeLlama infill tokens past SmolLM2's vocabulary
        n = min(m.get_output_embeddings().weight.shape[0] for m in (target_model, draft_model))
        if tok_t is not None and tok_d is not None and _reachable(tok_t, n) != _reachable(tok_d, n):
            raise SpecGymError(
                f"draft {draft!r} and target {target!r} tokenizers map different ids; speculative "
                "decoding needs one vocabulary: pick a draft from the target's model family"
            )
        pair = cls(
            target=target_model,
            draft=draft_model,
            tokenizer=tok_t or tok_d,
            name=name or f"{target}+{draft}",
            info={"target": target, "draft": draft},
        )
        return pair

    def check_compatible(self) -> None:
        """Same logits width and same device, or one clear error."""
        vt = self.target.get_output_embeddings().weight.shape[0]
        vd = self.draft.get_output_embeddings().weight.shape[0]
        if vt != vd:
            raise SpecGymError(
                f"draft vocabulary ({vd}) differs from target vocabulary ({vt}); speculative decoding "
                "needs one vocabulary: pick a draft from the target's model family"
            )
        if self.target.device != self.draft.device:
            raise SpecGymError(f"target on {self.target.device} but draft on {self.draft.device}; move both")

    def to_device(self, device: torch.device) -> ModelPair:
        self.target.to(device)
        self.draft.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return self.target.device

    @property
    def dtype_name(self) -> str:
        """The target's dtype as results record it: ``float32``, ``bfloat16``, ..."""
        return str(self.target.dtype).removeprefix("torch.")

    @property
    def vocab_size(self) -> int:
        return self.target.get_output_embeddings().weight.shape[0]

    @property
    def max_context(self) -> int:
        """Longest sequence both models accept (their position limits)."""
        limits = [getattr(m.config, "max_position_embeddings", None) for m in (self.target, self.draft)]
        return min(x for x in limits if x) if any(limits) else 1 << 30

    @property
    def eos_token_ids(self) -> set[int]:
        ids: set[int] = set()
        for source in (self.target.generation_config, self.target.config):
            eos = getattr(source, "eos_token_id", None)
            ids.update([eos] if isinstance(eos, int) else (eos or []))
        if self.tokenizer is not None and self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    def describe(self) -> dict[str, Any]:
        """Name, sizes, dtypes and sources: goes into every run's config."""

        def params(m: PreTrainedModel) -> int:
            return sum(p.numel() for p in m.parameters())

        return {
            "name": self.name,
            "device": str(self.device),
            "dtype": self.dtype_name,
            "target_params": params(self.target),
            "draft_params": params(self.draft),
            "target_revision": getattr(self.target.config, "_commit_hash", None),
            "draft_revision": getattr(self.draft.config, "_commit_hash", None),
            **self.info,
        }

    def encode(self, text: str, *, chat: bool = True) -> list[int]:
        """Token ids of a prompt, through the chat template when the tokenizer has one."""
        if self.tokenizer is None:
            raise SpecGymError(f"pair {self.name!r} has no tokenizer; pass token ids instead of text")
        return encode_prompt(self.tokenizer, text, chat=chat)
