"""Ray actors for :mod:`experiments.workers` (imported only with ``--workers``; needs ``.[ray]``).

Each :class:`Worker` actor runs its ``setup`` once (the model pair) and then any function of that
state. :class:`RayPool` hands items to the actors as they free up (two queued on each), so a slow
item never holds the others up, and keeps the results in item order. Ray's ``ActorPool`` would
hand a dead actor new work after a failure; here the dead actor is dropped and its items given to
the others.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import ray
import torch
from ray.exceptions import RayActorError, RayTaskError
from tqdm.auto import tqdm

from envs.specdec import SpecGymError
from experiments.cli import RAY_ADDRESS_HELP

QUEUED = 2  # batches in flight per actor
BATCHES_PER_ACTOR = 16  # items travel in batches: fewer round trips through a busy driver and raylet
S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")


def connect(address: str | None) -> None:
    """Join the cluster at ``address``, or start a local Ray (once per process: the training envs
    and the eval env share it)."""
    if ray.is_initialized():
        return
    local = address is None
    try:
        ray.init(
            address=address,
            include_dashboard=False if local else None,
            logging_level=logging.WARNING,
            log_to_driver=True,
            # Ray runs workers at nice 15 by default; here they do the work a serial run does at
            # nice 0, and on a shared machine nice 15 leaves them the scraps of everyone else's
            _system_config={"worker_niceness": 0} if local else None,
        )
    except ConnectionError as exc:
        raise SpecGymError(f"cannot join the Ray cluster at {address}: {exc}; {RAY_ADDRESS_HELP}") from None


def actor_options(workers: int, threads: int, device: str, local: bool) -> dict[str, Any]:
    """One GPU per actor when the cluster has GPUs (unless ``device`` is cpu); on a cluster also
    ``threads`` CPUs. Refused when the cluster has too few (Ray would leave the actors pending,
    silently). A local Ray asks for no CPUs: the number of workers on this machine is the user's
    call (and the training envs' actors and the eval env's share it)."""
    have = ray.cluster_resources()
    gpus = 1 if have.get("GPU", 0) >= 1 and device != "cpu" else 0
    cpus = 0 if local else threads
    need = {"CPU": workers * cpus, "GPU": workers * gpus}
    for kind, count in need.items():
        if count > have.get(kind, 0):
            raise SpecGymError(
                f"--workers {workers} needs {count:g} {kind}s (one GPU each, --threads {threads} CPUs each) "
                f"but the Ray cluster has {have.get(kind, 0):g}; pass fewer --workers or add nodes"
            )
    return {"num_cpus": cpus, "num_gpus": gpus}


def task_error(exc: RayTaskError) -> BaseException:
    """A SpecGymError raised inside a worker, as the one-line error it is here (Ray would wrap it
    in the worker's traceback); anything else as Ray raised it."""
    cause = getattr(exc, "cause", None)
    return SpecGymError(str(cause)) if isinstance(cause, SpecGymError) else exc


@ray.remote
class Worker:
    """Holds one ``setup()`` result (a pair, envs ...) and runs functions of it."""

    def start(self, setup: Callable[[], Any], threads: int) -> str:
        torch.set_num_threads(threads)  # several workers on one node: one thread each unless told
        self.state = setup()
        return ray.get_runtime_context().get_node_id()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(self.state, *args)


def run_batch(state: Any, fn: Callable[[Any, T], R], batch: list[T]) -> list[R]:
    """``fn(state, item)`` for each item of a batch, on the actor holding ``state``."""
    return [fn(state, item) for item in batch]


class RayPool:
    """``workers`` Ray actors each holding ``setup()`` (or actor i ``setup[i]()``, given a list);
    ``map`` merges results in item order and runs an item whose actor died on another actor
    (``failures`` counts them)."""

    def __init__(
        self,
        setup: Callable[[], Any] | list[Callable[[], Any]],
        *,
        workers: int,
        address: str | None,
        threads: int,
        device: str,
    ):
        setups = setup if isinstance(setup, list) else [setup] * workers
        connect(address)
        options = actor_options(workers, threads, device, local=address is None)
        self.actors = [Worker.options(**options).remote() for _ in range(workers)]
        self.progress = True
        self.failures = 0
        self.done = 0  # items finished by the running map (a test kills an actor part-way)
        try:
            self.get([actor.start.remote(make, threads) for actor, make in zip(self.actors, setups, strict=True)])
        except BaseException:
            self.close()
            raise

    @staticmethod
    def get(refs: Any) -> Any:
        try:
            return ray.get(refs)
        except RayTaskError as exc:
            raise task_error(exc) from None

    def call(self, fn: Callable[[S], R]) -> R:
        """``fn(state)`` on one live actor."""
        while self.actors:
            try:
                return self.get(self.actors[0].call.remote(fn))
            except RayActorError:
                self.lost(self.actors[0])
        raise SpecGymError("every Ray worker died; see the workers' logs (ray logs) for why")

    def each(self, fn: Callable[[S], R], only: list[int] | None = None) -> list[R]:
        """``fn(state)`` on every actor (or those ``only`` lists) at once, in actor order."""
        actors = self.actors if only is None else [self.actors[i] for i in only]
        return self.get([actor.call.remote(fn) for actor in actors])

    def map(self, fn: Callable[[S, T], R], items: Sequence[T], desc: str) -> list[R]:
        # each call carries a batch of items (about BATCHES_PER_ACTOR per actor); a batch whose actor
        # died runs again, whole, on another
        size = max(1, math.ceil(len(items) / (len(self.actors) * BATCHES_PER_ACTOR)))
        batches = [range(s, min(s + size, len(items))) for s in range(0, len(items), size)]
        results: list[Any] = [None] * len(items)
        pending, running = deque(range(len(batches))), {}
        # two batches queued per actor: the next one starts as soon as the last ends, without waiting
        # for the round trip through this process
        slots = [actor for actor in self.actors for _ in range(QUEUED)]
        fn_ref = ray.put(fn)  # shipped once, not once per batch
        self.done = 0
        with tqdm(total=len(items), desc=f"{desc} ({len(self.actors)} workers)", disable=not self.progress) as bar:
            while pending or running:
                while pending and slots:
                    actor, b = slots.pop(), pending.popleft()
                    batch = [items[i] for i in batches[b]]
                    running[actor.call.remote(run_batch, fn_ref, batch)] = (actor, b)
                if not running:
                    raise SpecGymError("every Ray worker died; see the workers' logs (ray logs) for why")
                [ref], _ = ray.wait(list(running), num_returns=1)
                actor, b = running.pop(ref)
                try:
                    for i, result in zip(batches[b], self.get(ref), strict=True):
                        results[i] = result
                except RayActorError:
                    self.lost(actor)
                    pending.appendleft(b)  # again, on another worker
                    slots = [a for a in slots if a in self.actors]
                    continue
                slots.append(actor)
                self.done += len(batches[b])
                bar.update(len(batches[b]))
        return results

    def lost(self, actor: Any) -> None:
        if actor not in self.actors:
            return  # its other queued item, already counted
        self.failures += 1
        self.actors.remove(actor)
        tqdm.write(f"a Ray worker died; {len(self.actors)} left, its items run again on another")

    def close(self) -> None:
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
