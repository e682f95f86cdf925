"""The executors on this machine: ``local`` runs jobs one at a time in this process, ``process``
runs ``workers`` jobs at once in a pool of spawned processes (each worker dies with the driver).
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
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from rkdo.bench.executors.base import Executor, Outcome, lost, set_threads
from rkdo.bench.jobs import execute
from rkdo.bench.plan import Job

__all__ = ["SerialExecutor", "ProcessExecutor"]


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
    """``workers`` jobs at once, each in a spawned process of a local pool.

    A worker that dies (SIGKILL, the kernel's out-of-memory killer) breaks the whole pool: its
    other workers are stopped too and every job it held ends with ``BrokenProcessPool``. Those
    jobs are requeued in a new pool (training cells resume from their checkpoints); a job whose
    worker died :attr:`attempts` times is recorded as an ``"error"`` and the grid goes on.
    """

    attempts = 2

    def __init__(self, out: Path, *, workers: int = 1, threads: int | None = None,
                 resources: dict[str, Any] | None = None) -> None:
        super().__init__(out, workers=workers, threads=threads, resources=resources)
        self._pool = self._new_pool()
        self._running: dict[Future[Outcome], tuple[Job, Future[Outcome]]] = {}
        self._tries: dict[str, int] = {}

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_init, initargs=(self.threads,))

    def submit(self, job: Job) -> Future[Outcome]:
        outer: Future[Outcome] = Future()
        outer.set_running_or_notify_cancel()
        self._start(job, outer)
        return outer

    def _start(self, job: Job, outer: Future[Outcome]) -> None:
        self._tries[job.key] = self._tries.get(job.key, 0) + 1
        try:
            inner = self._pool.submit(execute, job, self.out)
        except BrokenProcessPool:  # broken since the last check: the jobs in it are requeued
            self._pool = self._new_pool()
            inner = self._pool.submit(execute, job, self.out)
        self._running[inner] = (job, outer)

    def as_completed(self) -> Iterator[tuple[Job, Outcome]]:
        while self._running:
            finished, _ = wait(self._running, return_when=FIRST_COMPLETED)
            broken: list[tuple[Job, Future[Outcome], BaseException]] = []
            for future in finished:
                job, outer = self._running.pop(future)
                error = future.exception()
                if isinstance(error, BrokenProcessPool):
                    broken.append((job, outer, error))
                    continue
                outcome = future.result()
                outer.set_result(outcome)
                yield job, outcome
            if broken:
                yield from self._recover(broken)

    def _recover(self, broken: list[tuple[Job, Future[Outcome], BaseException]]
                 ) -> Iterator[tuple[Job, Outcome]]:
        """A worker died: finish reading the old pool, then requeue its jobs in a new one."""
        for future in list(self._running):  # the old pool's other jobs end now too
            job, outer = self._running.pop(future)
            error = future.exception()
            if isinstance(error, BrokenProcessPool):
                broken.append((job, outer, error))
            else:
                outer.set_result(future.result())
                yield job, outer.result()
        self._pool.shutdown(wait=True)
        self._pool = self._new_pool()
        keys = ", ".join(job.key for job, _, _ in broken)
        print(f"rkdo bench: a worker process died (killed, or out of memory?); its pool's "
              f"cells start again in a new pool: {keys}", file=sys.stderr)
        for job, outer, error in broken:
            if self._tries[job.key] < self.attempts:
                self._start(job, outer)
                continue
            outcome = lost(error, f"its worker process died in {self.attempts} attempt(s) "
                                  "(killed, or out of memory?); rerun the command to retry")
            outer.set_result(outcome)
            yield job, outcome

    def describe(self) -> str:
        return f"{len(self._running)} jobs left, {self.workers} workers"

    def close(self, cancel: bool = False) -> None:
        if cancel:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool.shutdown(wait=True)
