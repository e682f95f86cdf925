"""Executors: where a grid's jobs run. The runner submits every pending job, then stores each
outcome as it completes; the executor decides where :func:`rkdo.bench.jobs.execute` runs.

    with make_executor(name, out, workers=W, threads=T) as executor:
        for job in pending:
            executor.submit(job)                   # -> a concurrent.futures.Future
        for job, outcome in executor.as_completed():
            store.put(record(job, outcome))        # only the runner writes the store

An executor never writes the store; its workers write only their jobs' run directories under
``out/runs``. To add one (Ray, Slurm), subclass :class:`Executor`, implement ``submit``,
``as_completed`` and ``describe`` (and ``close`` if it holds resources), and register it in
:data:`EXECUTORS`; its name becomes a choice of ``run_grid(executor=...)``.
"""

from __future__ import annotations

import abc
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from types import TracebackType
from typing import Any

import torch

from rkdo._validation import check_choice, check_int
from rkdo.bench.jobs import execute
from rkdo.bench.plan import Job

__all__ = ["Executor", "SerialExecutor", "ProcessExecutor", "EXECUTORS", "make_executor"]

Outcome = dict[str, Any]


class Executor(abc.ABC):
    """Runs submitted jobs and hands back their outcomes as they finish.

    Args:
        out: the store directory (jobs write their run directories under it).
        workers: jobs run at once.
        threads: ``torch.set_num_threads`` wherever jobs run (default: torch's).
    """

    def __init__(self, out: Path, *, workers: int = 1, threads: int | None = None) -> None:
        self.out = out
        self.workers = workers
        self.threads = threads

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


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        torch.set_num_threads(threads)


class SerialExecutor(Executor):
    """One job at a time, in this process (``workers`` is ignored)."""

    def __init__(self, out: Path, *, workers: int = 1, threads: int | None = None) -> None:
        super().__init__(out, workers=1, threads=threads)
        _set_threads(threads)
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
    _set_threads(threads)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(1)


class ProcessExecutor(Executor):
    """``workers`` jobs at once, each in a spawned process of a local pool."""

    def __init__(self, out: Path, *, workers: int = 1, threads: int | None = None) -> None:
        super().__init__(out, workers=workers, threads=threads)
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


EXECUTORS: dict[str, type[Executor]] = {"local": SerialExecutor, "process": ProcessExecutor}
"""Executors by name: ``local`` (in this process), ``process`` (a local process pool)."""


def make_executor(name: str, out: Path, *, workers: int = 1,
                  threads: int | None = None) -> Executor:
    """The executor registered as ``name``, for the store at ``out``."""
    check_choice("executor", name, tuple(EXECUTORS))
    check_int("workers", workers, low=1)
    if threads is not None:
        check_int("threads", threads, low=1)
    return EXECUTORS[name](out, workers=workers, threads=threads)
