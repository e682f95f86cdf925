"""The executor contract, and the queue that remote executors (Ray, Slurm) share.

An :class:`Executor` runs submitted jobs somewhere and hands their outcomes back, in the order
they finish, to the runner, which alone writes the store. A :class:`QueuedExecutor` keeps at
most ``workers`` jobs in flight on a scheduler, holds back a cell whose run directory a live job
of an earlier, killed driver still owns (:mod:`rkdo.bench.lease`) until that job has ended (also
when that job took the cell only after this one was started: the refused job is requeued), and
turns a job that its scheduler lost (a killed worker, a cancelled Slurm job) into an ``"error"``
outcome, so the grid goes on and the next run retries the cell.
"""

from __future__ import annotations

import abc
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any

import torch

from rkdo.bench.jobs import execute
from rkdo.bench.lease import live_holder
from rkdo.bench.plan import Job
from rkdo.bench.store import RUNS_DIR, now

__all__ = ["Executor", "QueuedExecutor", "MissingExtraError", "Outcome", "run_job",
           "cell_resources", "lost"]

Outcome = dict[str, Any]


class MissingExtraError(ImportError, ValueError):
    """An executor's library is not installed; the message names the extra to install.
    (A ``ValueError`` too, so that the command line reports it as bad input, in one line.)"""


class Executor(abc.ABC):
    """Runs submitted jobs and hands back their outcomes as they finish.

    Args:
        out: the store directory (jobs write their run directories under it).
        workers: jobs run at once.
        threads: ``torch.set_num_threads`` wherever jobs run (default: torch's).
        resources: per-cell requests that win over the grid's (``cpus``, ``gpus``, ...).
    """

    def __init__(self, out: Path, *, workers: int = 1, threads: int | None = None,
                 resources: dict[str, Any] | None = None) -> None:
        self.out = out
        self.workers = workers
        self.threads = threads
        self.resources = dict(resources or {})

    def check(self, jobs: list[Job]) -> None:
        """Refuse (``ValueError``) before anything runs what these jobs cannot do here."""
        for job in jobs:
            cell_resources(job, self.resources, self.threads)

    @abc.abstractmethod
    def submit(self, job: Job) -> Future[Outcome]:
        """Queue ``job``; its future resolves to the job's outcome."""

    @abc.abstractmethod
    def as_completed(self) -> Iterator[tuple[Job, Outcome]]:
        """Every submitted job once, with its outcome, in the order they finish."""

    @abc.abstractmethod
    def describe(self) -> str:
        """What is running now, for the progress bar."""

    def close(self, cancel: bool = False) -> None:
        """Release workers; ``cancel`` drops jobs not started yet (after an error)."""
        return None  # nothing to release for an executor without workers

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close(cancel=error is not None)


def set_threads(threads: int | None) -> None:
    if threads is not None:
        torch.set_num_threads(threads)


def run_job(job: Job, out: str, threads: int | None) -> Outcome:
    """What a remote worker runs: set its torch threads, then :func:`execute` the job."""
    set_threads(threads)
    return execute(job, Path(out))


def cell_resources(job: Job, overrides: dict[str, Any], threads: int | None) -> dict[str, Any]:
    """A cell's request: the grid's ``resources``, then ``overrides``; ``cpus`` defaults to
    ``threads`` (or 1) and ``gpus`` to 1 when the cell's device is ``cuda``, else 0."""
    wanted = {**job.resources, **overrides}
    wanted.setdefault("cpus", threads or 1)
    wanted.setdefault("gpus", 1 if str(job.config.get("device", "")).startswith("cuda") else 0)
    if int(wanted["gpus"]) > 1:
        raise ValueError(
            f"cell {job.key} asks for {wanted['gpus']} GPUs, but a grid cell trains in one "
            "process on one GPU; train a multi-GPU run with torchrun (docs/distributed.md) "
            "or give the cell gpus = 1")
    return wanted


def lost(error: BaseException, where: str) -> Outcome:
    """The outcome of a job that its worker never reported (killed, cancelled, lost)."""
    stamp = now()
    return {"status": "error", "error": f"{where}: {type(error).__name__}: {error}",
            "traceback": "".join(traceback.format_exception(error)),
            "started_at": stamp, "finished_at": stamp, "wall_seconds": 0.0}


class QueuedExecutor(Executor):
    """At most ``workers`` jobs in flight on a scheduler; the rest wait here, in order.

    Subclasses implement ``_start(job) -> handle``, ``_finished(handles) -> handles`` (those
    done, waiting up to ``poll_seconds``), ``_outcome(handle)`` (may raise if the worker was
    lost) and ``_cancel(handles)``.
    """

    where = "worker"
    poll_seconds = 1.0

    def __init__(self, out: Path, *, workers: int = 1, threads: int | None = None,
                 resources: dict[str, Any] | None = None) -> None:
        super().__init__(out, workers=workers, threads=threads, resources=resources)
        self._waiting: list[tuple[Job, Future[Outcome]]] = []
        self._flight: dict[Any, tuple[Job, Future[Outcome]]] = {}

    @abc.abstractmethod
    def _start(self, job: Job) -> Any: ...

    @abc.abstractmethod
    def _finished(self, handles: list[Any]) -> list[Any]: ...

    @abc.abstractmethod
    def _outcome(self, handle: Any) -> Outcome: ...

    @abc.abstractmethod
    def _cancel(self, handles: list[Any]) -> None: ...

    def submit(self, job: Job) -> Future[Outcome]:
        future: Future[Outcome] = Future()
        self._waiting.append((job, future))
        self._fill()
        return future

    def _owned_elsewhere(self, job: Job) -> bool:
        """Whether a live job (of a killed driver) still owns ``job``'s run directory."""
        return job.kind == "train" and live_holder(self.out / RUNS_DIR / job.slug) is not None

    def _fill(self) -> None:
        for entry in list(self._waiting):
            if len(self._flight) >= self.workers:
                return
            job, future = entry
            if self._owned_elsewhere(job):
                continue  # its owner is still running: start it once that job has ended
            self._waiting.remove(entry)
            if not future.running():
                future.set_running_or_notify_cancel()
            self._flight[self._start(job)] = (job, future)

    def as_completed(self) -> Iterator[tuple[Job, Outcome]]:
        while self._flight or self._waiting:
            finished = self._finished(list(self._flight)) if self._flight else []
            if not finished:
                time.sleep(self.poll_seconds if self._flight else 1.0)
                self._fill()
            for handle in finished:
                job, future = self._flight.pop(handle)
                try:
                    outcome = self._outcome(handle)
                except Exception as error:  # the worker died or the scheduler dropped it
                    outcome = lost(error, f"{self.where} lost")
                if outcome.get("busy"):  # a job of a killed driver took the cell first
                    self._waiting.append((job, future))
                    continue
                future.set_result(outcome)
                self._fill()
                yield job, outcome

    def describe(self) -> str:
        return (f"{len(self._flight)} running, {len(self._waiting)} queued "
                f"on {self.where}")

    def close(self, cancel: bool = False) -> None:
        if cancel:
            self._waiting.clear()
            if self._flight:
                self._cancel(list(self._flight))
            self._flight.clear()
