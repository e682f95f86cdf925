"""The executors' registry: :data:`EXECUTORS` (a class per name of
:data:`~rkdo.bench.executors.catalogue.SUMMARIES`) and :func:`make_executor`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rkdo._validation import check_choice, check_int
from rkdo.bench.executors.base import Executor
from rkdo.bench.executors.local import ProcessExecutor, SerialExecutor
from rkdo.bench.executors.ray import RayExecutor
from rkdo.bench.executors.slurm import SubmititExecutor

__all__ = ["EXECUTORS", "make_executor"]

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
