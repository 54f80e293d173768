"""Argument groups and plumbing every ``python -m experiments.*`` command shares."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from envs.pairs import load_pair
from envs.specdec import ModelPair, SpecGymError
from envs.specdec.pair import resolve_device

# the fix for a Ray cluster that cannot be reached (experiments.workers and .ray_workers say it)
RAY_ADDRESS_HELP = "start a cluster with `ray start --head` and pass its address (HEAD_IP:6379)"


def console() -> Console:
    """Rich's console for result tables; when output goes to a file or CI log (no terminal, where
    rich assumes 80 columns and cuts cells short) wide enough for every column."""
    return Console() if sys.stdout.isatty() else Console(width=200)


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1 (a count of prompts, items, rounds ...)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_pair_args(
    parser: argparse.ArgumentParser, default: str | None = "smollm2-135m", default_help: str = ""
) -> None:
    group = parser.add_argument_group("model pair")
    group.add_argument("--pair", default=default, help=f"registered pair name (default: {default_help or default})")
    group.add_argument("--target", help="target model: hub id already cached locally, or a local path")
    group.add_argument("--draft", help="draft model: hub id already cached locally, or a local path")
    group.add_argument("--device", default="auto", help="auto (CUDA when present) | cpu | cuda[:N]")
    group.add_argument(
        "--dtype",
        default=None,
        help="float32 | bfloat16 | float16 | fast (bfloat16 where the device has it natively) | auto "
        "(default: the pair's, else bfloat16 on CUDA and float32 on CPU)",
    )
    group.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")


def add_prompt_args(
    parser: argparse.ArgumentParser, n: int = 20, max_new: int | None = 128, max_new_help: str | None = None
) -> None:
    group = parser.add_argument_group("prompts")
    group.add_argument(
        "--prompts",
        default=None,
        help="a .jsonl file, task:NAME (a reasoning-gym task's own questions), or reasoning-gym task "
        "names (comma-separated) for generated questions; default: held-out generated questions",
    )
    group.add_argument("--n-prompts", type=positive_int, default=n, help=f"number of prompts (default: {n})")
    group.add_argument("--max-new-tokens", type=int, default=max_new, help=max_new_help or f"(default: {max_new})")


@dataclass(kw_only=True)
class PairArgs:
    """The model pair options :func:`add_pair_args` adds, for the settings dataclasses of the commands."""

    pair: str | None = None
    target: str | None = None
    draft: str | None = None
    device: str = "auto"
    dtype: str | None = None
    threads: int | None = None


def check_device(device: str) -> None:
    """Refuse, naming the choices, a --device this machine cannot run on (``tpu``, CUDA without one),
    before any work: the engine's own check, called up front."""
    resolve_device(device)


def pair_args(settings: PairArgs | argparse.Namespace) -> PairArgs:
    """Just the pair options of a command's settings (what a worker needs to load the pair)."""
    return PairArgs(**{key: getattr(settings, key) for key in PairArgs.__dataclass_fields__})


def pair_from_args(args: PairArgs | argparse.Namespace) -> ModelPair:
    check_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    return load_pair(args.pair, target=args.target, draft=args.draft, device=args.device, dtype=args.dtype)


def write_json(path: str | Path | None, data: dict[str, Any]) -> None:
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    print(f"wrote {path}")


def run_main(main: Callable[[list[str] | None], Any], argv: list[str] | None = None) -> None:
    """Run a command; bad input ends in one line naming the fix, not a traceback."""
    try:
        main(argv)
    except SpecGymError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
