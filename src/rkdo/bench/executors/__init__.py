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
    catalogue the executors' names and one-line summaries (torch-free: ``rkdo bench --help``)
    registry  :data:`EXECUTORS` (a class per name) and :func:`make_executor`

To add one, subclass :class:`Executor` (or ``QueuedExecutor`` for a scheduler), implement
``submit``, ``as_completed`` and ``describe`` (and ``close`` if it holds resources), name it in
:data:`~rkdo.bench.executors.catalogue.SUMMARIES` and register it in :data:`EXECUTORS`; its
name becomes a choice of ``run_grid(executor=...)`` and of ``rkdo bench --executor``. The names
below load their module on first use (:mod:`rkdo._lazy`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rkdo._lazy import lazy_face
from rkdo.bench.executors.catalogue import SUMMARIES

if TYPE_CHECKING:
    from rkdo.bench.executors.base import Executor, MissingExtraError, Outcome, QueuedExecutor
    from rkdo.bench.executors.local import ProcessExecutor, SerialExecutor
    from rkdo.bench.executors.ray import RayExecutor
    from rkdo.bench.executors.registry import EXECUTORS, make_executor
    from rkdo.bench.executors.slurm import SubmititExecutor

__all__ = ["Executor", "QueuedExecutor", "MissingExtraError", "Outcome", "SerialExecutor",
           "ProcessExecutor", "RayExecutor", "SubmititExecutor", "EXECUTORS", "SUMMARIES",
           "make_executor"]

lazy_face(__name__, {
    **dict.fromkeys(("Executor", "MissingExtraError", "Outcome", "QueuedExecutor"),
                    "rkdo.bench.executors.base"),
    **dict.fromkeys(("ProcessExecutor", "SerialExecutor"), "rkdo.bench.executors.local"),
    "RayExecutor": "rkdo.bench.executors.ray",
    "SubmititExecutor": "rkdo.bench.executors.slurm",
    **dict.fromkeys(("EXECUTORS", "make_executor"), "rkdo.bench.executors.registry"),
})
