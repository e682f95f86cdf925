"""Executors: where a grid's jobs run. The runner submits every pending job, then stores each
outcome as it completes; the executor decides where :func:`rkdo.bench.jobs.execute` runs.

    with make_executor(name, out, workers=W, threads=T) as executor:
        for job in pending:
            executor.submit(job)                   # -> a concurrent.futures.Future
        for job, outcome in executor.as_completed():
            store.put(record(job, outcome))        # only the runner writes the store

An executor never writes the store; its workers write only their jobs' run directories under
``out/runs``.

    base      the contract (:class:`Executor`) and the queue remote executors share
    local     ``local`` (in this process) and ``process`` (a local process pool)
    ray       ``ray``: tasks on a Ray cluster (imports ray only when made)
    slurm     ``submitit``: Slurm jobs (imports submitit only when made)
    storage   what remote workers must see (shared paths), refused up front

To add one, subclass :class:`Executor` (or ``QueuedExecutor`` for a scheduler), implement
``submit``, ``as_completed`` and ``describe`` (and ``close`` if it holds resources), and
register it in :data:`EXECUTORS`; its name becomes a choice of ``run_grid(executor=...)`` and
of ``rkdo bench --executor``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rkdo._validation import check_choice, check_int
from rkdo.bench.executors.base import Executor, MissingExtraError, Outcome, QueuedExecutor
from rkdo.bench.executors.local import ProcessExecutor, SerialExecutor
from rkdo.bench.executors.ray import RayExecutor
from rkdo.bench.executors.slurm import SubmititExecutor

__all__ = ["Executor", "QueuedExecutor", "MissingExtraError", "Outcome", "SerialExecutor",
           "ProcessExecutor", "RayExecutor", "SubmititExecutor", "EXECUTORS", "DEFAULT_EXECUTOR",
           "make_executor"]

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
