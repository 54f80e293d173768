"""Argument groups and plumbing every ``python -m experiments.*`` command shares."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from envs.pairs import load_pair
from envs.specdec import ModelPair, SpecGymError
from envs.specdec.files import write_text_atomic
from envs.specdec.pair import resolve_device

# the fix for a Ray cluster that cannot be reached (experiments.workers and .ray_workers say it)
RAY_ADDRESS_HELP = "start a cluster with `ray start --head` and pass its address (HEAD_IP:6379)"


def console() -> Console:
    """Rich's console for result tables; when output goes to a file or CI log (no terminal, where
    rich assumes 80 columns and cuts cells short) wide enough for every column."""
    return Console() if sys.stdout.isatty() else Console(width=200)


# The long options of every CommandParser that parsed this command line (a subcommand's too):
# run_main words the engine's keyword-argument advice as these flags.
_FLAGS: set[str] = set()


class CommandParser(argparse.ArgumentParser):
    """The parser of a ``python -m experiments.*`` command; it notes its flags for :func:`run_main`."""

    def parse_known_args(
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        _FLAGS.update(opt for action in self._actions for opt in action.option_strings if opt.startswith("--"))
        return super().parse_known_args(args, namespace)


# A keyword as the engine's messages name it: not part of a longer word, flag, path or product
# (``depth*width=4``, ``--max-depth``, ``/a=b``)
_KEYWORD = r"(?<![\w.*/'\"-])(?P<name>[a-z][a-z0-9_]*)"
# ``pair='gsm'``, ``width=2``, ``rate=`` (a value: a Python repr of a string, else a bare token)
_ASSIGNED = re.compile(_KEYWORD + r"""=(?P<value>'[^']*'|"[^"]*"|[^\s,;)'"]+)?""")
# ``max_depth <= 8``, ``n_items must be ...``, ``rate must be ...``
_COMPARED = re.compile(_KEYWORD + r"(?= (?:<=|>=|<|>|must)\s)")


def cli_words(message: str, flags: Iterable[str]) -> str:
    """``message`` with the engine's keyword-argument advice worded as the command's flags, so a
    user who typed ``--pair`` reads ``pass --pair gsm``, not ``pass pair='gsm'``, and
    ``--max-depth <= 8``, not ``max_depth <= 8``; a keyword the command has no flag for stays."""
    by_name = {flag[2:].replace("-", "_"): flag for flag in flags}

    def assigned(m: re.Match[str]) -> str:
        flag, value = by_name.get(m["name"]), m["value"]
        if flag is None:
            return m[0]
        if value is None:
            return flag
        if value[0] in "'\"":
            value = shlex.quote(value[1:-1])
        return f"{flag} {value}"

    def compared(m: re.Match[str]) -> str:
        # a plain word only where it cannot be prose ("the pair must ..."): opening the message or after "pass"
        name, before = m["name"], m.string[: m.start()]
        keyword = "_" in name or not before.strip() or before.endswith("pass ")
        return by_name.get(name, m[0]) if keyword else m[0]

    return _COMPARED.sub(compared, _ASSIGNED.sub(assigned, message))


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
        help="a .jsonl file (a 'category' per record is kept), mix:chat (chat-style templates and the "
        "reasoning mix), task:NAME (a reasoning-gym task's own questions), or reasoning-gym task names "
        "(comma-separated) for generated questions; default: held-out generated questions",
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
    """Write a command's results to ``path`` (none: nothing), whole or not at all: an interrupted
    write never leaves a torn results file where an earlier one stood."""
    if path is None:
        return
    write_text_atomic(path, json.dumps(data, indent=2))
    print(f"wrote {path}")


def run_main(main: Callable[[list[str] | None], Any], argv: list[str] | None = None) -> None:
    """Run a command; bad input ends in one line naming the fix, in the command's flags, not a
    traceback. A ``main`` that returns an int (build_pair) exits with it."""
    _FLAGS.clear()
    try:
        result = main(argv)
    except SpecGymError as exc:
        print(f"error: {cli_words(str(exc), _FLAGS)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    if isinstance(result, int) and not isinstance(result, bool):
        sys.exit(result)
