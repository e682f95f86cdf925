"""Executors: where a grid's jobs run. The runner submits every pending job, then stores each
outcome as it completes; the executor decides where :func:`rkdo.bench.jobs.execute` runs.

    with make_executor(name, out, workers=W, threads=T) as executor:
        for job in pending:
            executor.submit(job)                   # -> a concurrent.futures.Future
        for job, outcome in executor.as_completed():
            store.put(record(job, outcome))        # only the runner writes the store

An executor never writes the store; its workers write only their jobs' run directories under
``out/runs``. ``ray`` (:mod:`rkdo.bench.executors_ray`) and ``submitit``
(:mod:`rkdo.bench.executors_slurm`) import their library only when made. To add one, subclass
:class:`~rkdo.bench.executor_base.Executor` (or ``QueuedExecutor`` for a scheduler), implement
``submit``, ``as_completed`` and ``describe`` (and ``close`` if it holds resources), and
register it in :data:`EXECUTORS`; its name becomes a choice of ``run_grid(executor=...)``.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from rkdo._validation import check_choice, check_int
from rkdo.bench.executor_base import Executor, Outcome, set_threads
from rkdo.bench.executors_ray import RayExecutor
from rkdo.bench.executors_slurm import SubmititExecutor
from rkdo.bench.jobs import execute
from rkdo.bench.plan import Job

__all__ = ["Executor", "SerialExecutor", "ProcessExecutor", "RayExecutor", "SubmititExecutor",
           "EXECUTORS", "make_executor"]


class SerialExecutor(Executor):
    """One job at a time, in this process (``workers`` is ignored)."""

    def __init__(self, out: Path, *, workers: int = 1, threads: int | None = None,
                 resources: dict[str, Any] | None = None) -> None:
        super().__init__(out, workers=1, threads=threads, resources=resources)
        set_threads(threads)
        self._queue: list[tuple[Job, Future[Outcome]]] = []

    def submit(self, job: Job) -> Future[Outcome]:
        future: Future[Outcome] = Future()
        self._queue.append((job, future))
        return future

    def as_completed(self) -> Iterator[tuple[Job, Outcome]]:
        while self._queue:
            job, future = self._queue.pop(0)
            if future.set_running_or_notify_cancel():
                future.set_result(execute(job, self.out))
                yield job, future.result()

    def describe(self) -> str:
        return self._queue[0][0].key if self._queue else ""  # the next job to run


def _worker_init(threads: int | None) -> None:
    """Worker set-up: its torch threads, and (Linux) die with the parent, so that a killed
    ``rkdo bench`` leaves no worker writing into a run that the next ``rkdo bench`` resumes."""
    set_threads(threads)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(1)


class ProcessExecutor(Executor):
    """``workers`` jobs at once, each in a spawned process of a local pool."""

    def __init__(self, out: Path, *, workers: int = 1, threads: int | None = None,
                 resources: dict[str, Any] | None = None) -> None:
        super().__init__(out, workers=workers, threads=threads, resources=resources)
        self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_worker_init, initargs=(threads,))
        self._running: dict[Future[Outcome], Job] = {}

    def submit(self, job: Job) -> Future[Outcome]:
        future = self._pool.submit(execute, job, self.out)
        self._running[future] = job
        return future

    def as_completed(self) -> Iterator[tuple[Job, Outcome]]:
        while self._running:
            finished, _ = wait(self._running, return_when=FIRST_COMPLETED)
            for future in finished:
                yield self._running.pop(future), future.result()

    def describe(self) -> str:
        return f"{len(self._running)} jobs left, {self.workers} workers"

    def close(self, cancel: bool = False) -> None:
        if cancel:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool.shutdown(wait=True)


EXECUTORS: dict[str, type[Executor]] = {"local": SerialExecutor, "process": ProcessExecutor,
                                        "ray": RayExecutor, "submitit": SubmititExecutor}
"""Executors by name: ``local`` (in this process), ``process`` (a local process pool), ``ray``
(tasks on a Ray cluster, extra ``rkdo[ray]``), ``submitit`` (Slurm jobs, extra ``rkdo[slurm]``)."""


def make_executor(name: str, out: Path, *, workers: int = 1, threads: int | None = None,
                  **options: Any) -> Executor:
    """The executor registered as ``name``, for the store at ``out``; ``options`` go to its
    constructor (``resources``; Ray's ``address``; submitit's ``cluster``, ``parameters``)."""
    check_choice("executor", name, tuple(EXECUTORS))
    check_int("workers", workers, low=1)
    if threads is not None:
        check_int("threads", threads, low=1)
    return EXECUTORS[name](out, workers=workers, threads=threads, **options)
