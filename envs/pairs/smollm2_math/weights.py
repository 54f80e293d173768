"""What the recipe trains, kept small enough to ship, and the pair assembled from it.

``weights/target-lora``: the target's LoRA adapter (peft format, float16). ``weights/draft-layers``:
every trained weight of the draft (all but its frozen tied embedding; float16). With the
converted SmolLM2 target and the bundled draft they give the whole pair: ``assemble`` merges the
adapter into the target (a plain Llama any code loads) and puts the layers into the draft.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from pathlib import Path

import torch

from envs.pairs.distill.card import copy_tokenizer_files, save_draft
from envs.specdec import shortlist
from envs.specdec.errors import SpecGymError
from envs.specdec.files import staged_dir

LORA = "target-lora"
DRAFT_LAYERS = "draft-layers"
LAYERS_FILE = "draft_layers.safetensors"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
BASE_NAME = "smollm2-135m target (SmolLM2-135M-Instruct, envs/pairs/smollm2.py)"  # what the adapter is for
MARKER = "specgym.json"  # written last into an assembled model folder
REBUILD = "delete it and run `python -m experiments.build_pair smollm2-math` to rebuild it"


def plain_model(model_dir: Path):
    """A saved model in float32, without the shortlist head the project's loader would add (the
    draft trains and saves its full tied head; the shortlist file travels beside it)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32, local_files_only=True)


def save_lora(peft_model, out: Path) -> None:
    """The adapter alone, float16, staged (a killed save leaves no half-written folder)."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    state = {k: v.detach().to(torch.float16).contiguous() for k, v in get_peft_model_state_dict(peft_model).items()}
    config = copy.copy(peft_model.peft_config["default"])
    config.base_model_name_or_path = BASE_NAME  # not the training machine's path
    with staged_dir(out) as tmp:
        config.save_pretrained(str(tmp))
        save_file(state, str(tmp / "adapter_model.safetensors"))


def save_draft_layers(draft, out: Path) -> None:
    """The draft's trained weights (not its frozen embedding), float16, staged."""
    from safetensors.torch import save_file

    state = {n: p.detach().to(torch.float16).contiguous() for n, p in draft.named_parameters() if p.requires_grad}
    with staged_dir(out) as tmp:
        save_file(state, str(tmp / LAYERS_FILE))


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.is_file():
        raise SpecGymError(f"{path} is missing; {REBUILD}")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for a truncated or garbled file
        raise SpecGymError(f"{path} is corrupt ({type(exc).__name__}); {REBUILD}") from None


def merged_target(base, lora_dir: Path):
    """``base`` with the adapter at ``lora_dir`` merged in; a missing, corrupt or mismatched
    adapter is refused naming the file."""
    from peft import LoraConfig, set_peft_model_state_dict

    from envs.pairs.smollm2_math.train import add_adapter

    try:
        config = LoraConfig.from_pretrained(str(lora_dir))
    except (OSError, ValueError, TypeError) as exc:
        raise SpecGymError(f"{lora_dir / 'adapter_config.json'} is missing or corrupt ({exc}); {REBUILD}") from None
    state = _read_tensors(lora_dir / "adapter_model.safetensors")
    # the adapter fits the converted target wherever this machine keeps it (peft warns at a renamed base)
    config.base_model_name_or_path = base.name_or_path
    model = add_adapter(base, config)
    try:
        result = set_peft_model_state_dict(model, state)
    except RuntimeError as exc:  # shapes that do not fit the target
        raise SpecGymError(f"{lora_dir} does not fit the target ({exc}); {REBUILD}") from None
    lora_keys = [k for k in result.missing_keys if "lora_" in k]
    if result.unexpected_keys or lora_keys or not state:
        raise SpecGymError(f"{lora_dir} holds other weights than the adapter's config names; {REBUILD}")
    return model.merge_and_unload()


def load_draft_layers(draft, layers_dir: Path):
    """``draft`` with the trained weights at ``layers_dir`` (checked to be exactly its non-embedding ones)."""
    state = _read_tensors(layers_dir / LAYERS_FILE)
    embedding = {n for n, p in draft.named_parameters() if p is draft.get_input_embeddings().weight}
    expected = {n for n, _ in draft.named_parameters()} - embedding
    if set(state) != expected:
        raise SpecGymError(f"{layers_dir / LAYERS_FILE} holds other weights than the draft's layers; {REBUILD}")
    try:
        draft.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    except RuntimeError as exc:
        raise SpecGymError(f"{layers_dir / LAYERS_FILE} does not fit the draft ({exc}); {REBUILD}") from None
    return draft


def digest(path: Path) -> str:
    """The sha256 of a weights file: an assembled model records the one it was made from."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def is_assembled(model_dir: Path, weights_digest: str) -> bool:
    """True when ``model_dir`` was assembled, whole, from the weights file of ``weights_digest``
    (a new shipping of the weights makes an older assembly stale)."""
    try:
        marker = json.loads((model_dir / MARKER).read_text())
        return marker.get("complete") is True and marker.get("digest") == weights_digest
    except (OSError, json.JSONDecodeError, AttributeError):
        return False


def assemble(weights: Path, base_target: Path, base_draft: Path, pair_dir: Path) -> tuple[Path, Path]:
    """``pair_dir/{target,draft}`` from the trained weights under ``weights`` (each skipped when
    already assembled); returns the two paths."""
    target_dir, draft_dir = pair_dir / "target", pair_dir / "draft"
    marker = {"complete": True, "weights": str(weights)}
    lora_digest = digest(weights / LORA / "adapter_model.safetensors")
    if not is_assembled(target_dir, lora_digest):
        target = merged_target(plain_model(base_target), weights / LORA)
        with staged_dir(target_dir) as tmp:
            target.save_pretrained(str(tmp))
            copy_tokenizer_files(base_target, tmp)
            (tmp / MARKER).write_text(json.dumps({**marker, "base": str(base_target), "digest": lora_digest}) + "\n")
    layers_digest = digest(weights / DRAFT_LAYERS / LAYERS_FILE)
    if not is_assembled(draft_dir, layers_digest):
        draft = load_draft_layers(plain_model(base_draft), weights / DRAFT_LAYERS)
        with staged_dir(draft_dir) as tmp:
            save_draft(draft, base_target, tmp)
            if (base_draft / shortlist.FILENAME).exists():
                shutil.copy2(base_draft / shortlist.FILENAME, tmp / shortlist.FILENAME)
            (tmp / MARKER).write_text(json.dumps({**marker, "base": str(base_draft), "digest": layers_digest}) + "\n")
    return target_dir, draft_dir
