"""Running a grid: plan its jobs, skip the finished ones, run the rest, store every outcome.

    jobs    = plan(grid)                                  (:mod:`rkdo.bench.plan`)
    pending = [j for j in jobs if not is_done(j, store)]  (:mod:`rkdo.bench.store`)
    for job, outcome in executor.as_completed():          (:mod:`rkdo.bench.executors`)
        store.put(record(job, outcome))                   this process is the only writer

Rerunning skips finished jobs; an interrupted training run resumes from its last checkpoint
(checkpoints are written at every evaluation and every ``checkpoint_every`` steps); a job that
fails is recorded with its error and the grid goes on (failed jobs are retried on the next run).
A store created by a different grid is refused unless ``allow_grid_change`` is given, and even
then only jobs whose settings are unchanged are reused. The report is not written here: the
caller writes it from the store (``rkdo report``, :func:`rkdo.bench.report.write_report`).
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy
import scipy
import sklearn
import torch

import rkdo
from rkdo._validation import check_choice, check_int
from rkdo.bench.executors import EXECUTORS, make_executor
from rkdo.bench.grid import Grid
from rkdo.bench.plan import Job, check_data, plan
from rkdo.bench.store import Store, is_done, now, open_store

__all__ = ["BenchSummary", "run_grid", "versions"]


@dataclass
class BenchSummary:
    """What one ``run_grid`` call did."""

    out: Path
    total: int
    done_before: int
    ran: int
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0


def versions(method_names: Sequence[str] = ()) -> dict[str, str]:
    """Versions of Python and the libraries a result depends on."""
    found = {
        "python": platform.python_version(),
        "rkdo": rkdo.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "platform": platform.platform(),
    }
    if any(name.startswith("lightly") for name in method_names):
        with contextlib.suppress(ImportError):
            import lightly

            found["lightly"] = lightly.__version__
    return found


class _Progress:
    """Jobs done / total with an estimate of the time left (tqdm), or nothing but failures."""

    def __init__(self, enabled: bool, total: int, initial: int, name: str) -> None:
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="cell", smoothing=0.0,
                            dynamic_ncols=True, desc=f"bench {name}")

    def status(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(text)

    def failed(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(message)
        else:
            print(message, file=sys.stderr)

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _run_pending(store: Store, pending: list[Job], grid: Grid, summary: BenchSummary,
                 progress: _Progress, context: dict[str, Any], threads: int | None,
                 options: dict[str, Any]) -> None:
    """Run ``pending`` on ``context["executor"]``; store each outcome as it arrives."""
    if not pending:
        return  # nothing to run: no cluster to join
    with make_executor(context["executor"], store.out, workers=context["workers"],
                       threads=threads, **options) as running:
        running.check(pending)
        for job in pending:
            running.submit(job)
        progress.status(running.describe())
        for job, outcome in running.as_completed():
            record = {"key": job.key, "kind": job.kind, "dataset": job.dataset,
                      "method": job.method, "seed": job.seed, "config": job.config,
                      "grid_name": grid.name, "grid_hash": grid.hash, **context, **outcome}
            if record["status"] == "error":
                summary.failed.append(job.key)
                progress.failed(f"cell {job.key} failed: {record['error']}")
            elif record["status"] == "skipped":
                summary.skipped.append(job.key)
            store.put(record)
            progress.advance()
            progress.status(running.describe())


def run_grid(
    grid: Grid,
    out: str | os.PathLike[str],
    *,
    allow_grid_change: bool = False,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    threads: int | None = None,
    workers: int = 1,
    executor: str | None = None,
    executor_options: dict[str, Any] | None = None,
    check_data_first: bool = True,
    command: str | None = None,
) -> BenchSummary:
    """Run every job of ``grid`` not yet in the store at ``out``.

    Args:
        grid: the parsed grid (:func:`rkdo.bench.grid.load_grid`).
        out: the store directory (created if needed).
        allow_grid_change: use a store created by a different grid (unchanged jobs are kept).
        overrides: execution settings for every run (``data_root``, ``download``, ``device``,
            ``checkpoint_every``, ``log_every``): not part of a result's identity.
        progress: show jobs done / total and an estimate of the time left (tqdm).
        threads: ``torch.set_num_threads`` in every process that runs jobs (default: torch's).
        workers: jobs run at once, each in its own process (1: in this process). Only this
            process writes the store; results do not depend on the number of workers.
        executor: a name in :data:`rkdo.bench.executors.EXECUTORS`; default ``"process"`` when
            ``workers > 1`` and more than one job is pending, else ``"local"``. With ``ray``
            and ``submitit``, ``workers`` is the number of cells in flight at once.
        executor_options: given to the executor: ``resources`` (per-cell requests that win
            over the grid's ``[resources]``), Ray's ``address``, submitit's ``cluster`` and
            ``parameters``.
        check_data_first: load every dataset of the grid once before any job runs, and
            refuse missing data naming the grid's entry (off: each cell fails on its own).
        command: the command line, recorded with every result.
    """
    out = Path(out)
    if threads is not None:
        check_int("threads", threads, low=1)
    check_int("workers", workers, low=1)
    if executor is not None:
        check_choice("executor", executor, tuple(EXECUTORS))
    jobs = plan(grid, overrides)
    if check_data_first:
        check_data(jobs)
    started = time.perf_counter()
    context = {"command": command, "workers": workers, "executor": executor}
    with open_store(out, grid, allow_grid_change) as store:
        summary = _run_in_store(store, grid, jobs, context, threads, progress,
                                dict(executor_options or {}))
    summary.seconds = time.perf_counter() - started
    return summary


def _run_in_store(store: Store, grid: Grid, jobs: list[Job], context: dict[str, Any],
                  threads: int | None, progress: bool, options: dict[str, Any]) -> BenchSummary:
    """Run the jobs not done yet in the locked ``store`` and log the session there."""
    started = time.perf_counter()
    pending = [job for job in jobs if not is_done(job, store.records.get(job.key))]
    summary = BenchSummary(store.out, len(jobs), len(jobs) - len(pending), len(pending))
    workers = context["workers"]
    context = {"versions": versions([str(m.options.get("method", m.name))
                                     for m in grid.methods]), **context}
    session = store.log_session({"started": now(), "command": context["command"],
                                 "workers": workers, "threads": threads,
                                 "pending": len(pending)})
    bar = _Progress(progress, len(jobs), summary.done_before, grid.name)
    if context["executor"] is None:
        context["executor"] = "process" if workers > 1 and len(pending) > 1 else "local"
    try:
        _run_pending(store, pending, grid, summary, bar, context, threads, options)
    finally:
        bar.close()
    store.log_session({**session, "finished": now(),
                       "seconds": time.perf_counter() - started}, replace=True)
    return summary
