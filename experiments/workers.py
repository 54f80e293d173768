"""Per-item model work (recording, live decoding, calibration) in this process or over Ray workers.

A command that runs a model over many items opens a pool with :func:`open_pool`: ``setup`` makes
the state every item needs (typically the model pair, loaded once), ``pool.map(work, items)``
returns ``work(state, item)`` for each item in item order, under one progress bar.

Without ``--workers`` the pool is this process (nothing imports Ray). With ``--workers N`` it is
N Ray actors (:mod:`experiments.ray_workers`), each running ``setup`` once; items go to whichever
actor is free, and an item whose actor dies is run again on another one, so the merged results are
the serial ones. ``--ray-address`` (else ``RAY_ADDRESS``, else a local Ray started here) says which
Ray cluster.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import torch
from tqdm.auto import tqdm

from envs.specdec import SpecGymError
from experiments.cli import RAY_ADDRESS_HELP, check_device, positive_int

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")

RAY_EXTRA = "pip install -e .[ray]"


def add_worker_args(parser: argparse.ArgumentParser, what: str = "the pair") -> None:
    group = parser.add_argument_group("workers (Ray; docs/scaling.md)")
    group.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help=f"Ray actors, each loading {what} once (one GPU each when the cluster has GPUs; "
        "--threads torch threads each, default 1); default: this process only, without Ray",
    )
    group.add_argument(
        "--ray-address",
        default=None,
        help="the Ray cluster for --workers (HOST:PORT, ray://HOST:PORT or auto); default: $RAY_ADDRESS, "
        "else a local Ray started for this command",
    )


@dataclass(kw_only=True)
class WorkerArgs:
    """The options :func:`add_worker_args` adds, for the settings dataclasses of the commands."""

    workers: int | None = None
    ray_address: str | None = None


def ray_address(given: str | None) -> str | None:
    """The cluster to join: ``--ray-address``, else ``RAY_ADDRESS``, else None (a local Ray)."""
    return given or os.environ.get("RAY_ADDRESS") or None


def check_workers(workers: int | None, address: str | None = None, device: str = "auto") -> None:
    """Refuse, before any work, ``--workers`` that cannot run: below 1, Ray not installed, a cluster
    address nothing answers at, or a ``--device cuda:N`` (Ray gives each worker its own GPU)."""
    if workers is None:
        if address:
            raise SpecGymError("--ray-address needs --workers N (the Ray actors to start on that cluster)")
        check_device(device)
        return
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise SpecGymError(f"--workers must be an integer >= 1, got {workers!r}")
    if re.fullmatch(r"cuda:\d+", str(device)):
        raise SpecGymError(f"--device {device} with --workers: Ray gives each worker its own GPU; pass --device auto")
    if not str(device).startswith("cuda"):  # the driver may have no GPU while its workers do
        check_device(device)
    address = ray_address(address)
    if address:
        check_reachable(address)
    if importlib.util.find_spec("ray") is None:
        raise SpecGymError(f"--workers needs Ray, which is not installed; install it with {RAY_EXTRA}")


def check_reachable(address: str) -> None:
    """A HOST:PORT (or ray://HOST:PORT) that takes no TCP connection within 5 s is refused here:
    ``ray.init`` itself would retry for minutes."""
    match = re.fullmatch(r"(?:ray://)?\[?([^\]]+?)\]?:(\d+)", address)
    if address == "auto":
        return  # Ray finds the cluster started on this node; ray_workers refuses when there is none
    if not match:
        raise SpecGymError(f"--ray-address {address!r} is not HOST:PORT, ray://HOST:PORT or auto; {RAY_ADDRESS_HELP}")
    try:
        socket.create_connection((match[1], int(match[2])), timeout=5).close()
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise SpecGymError(f"cannot reach a Ray cluster at {address} ({why}); {RAY_ADDRESS_HELP}") from None


class Pool(Protocol[S]):
    """Runs functions of the workers' state: ``call`` once, ``each`` on every worker (or the workers
    ``only`` lists) at once, ``map`` over items in item order."""

    def call(self, fn: Callable[[S], R]) -> R: ...

    def each(self, fn: Callable[[S], R], only: list[int] | None = None) -> list[R]: ...

    def map(self, fn: Callable[[S, T], R], items: Sequence[T], desc: str) -> list[R]: ...


class SerialPool:
    """The pool without ``--workers``: ``setup`` run once in this process."""

    def __init__(self, setup: Callable[[], S], progress: bool = True):
        self.state = setup()
        self.progress = progress

    def call(self, fn: Callable[[S], R]) -> R:
        return fn(self.state)

    def each(self, fn: Callable[[S], R], only: list[int] | None = None) -> list[R]:
        return [fn(self.state)]  # one worker: this process

    def map(self, fn: Callable[[S, T], R], items: Sequence[T], desc: str) -> list[R]:
        return [fn(self.state, item) for item in tqdm(items, desc=desc, disable=not self.progress)]


@contextmanager
def open_pool(
    setup: Callable[[], Any],
    *,
    workers: int | None,
    address: str | None = None,
    threads: int | None = None,
    device: str = "auto",
    progress: bool = True,
) -> Iterator[Pool]:
    """A pool whose workers each run ``setup`` once: this process without ``workers``, else that
    many Ray actors (``threads`` torch threads each, default 1; a GPU each when the cluster has
    GPUs and ``device`` is not cpu); the actors end with the block."""
    check_workers(workers, address, device)
    if workers is None:
        if threads:
            torch.set_num_threads(threads)
        yield SerialPool(setup, progress)
        return
    from experiments.ray_workers import RayPool

    pool = RayPool(setup, workers=workers, address=ray_address(address), threads=threads or 1, device=device)
    try:
        pool.progress = progress
        yield pool
    finally:
        pool.close()
