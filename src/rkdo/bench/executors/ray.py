"""Grid jobs as Ray tasks (``rkdo bench GRID --executor ray``; extra ``rkdo[ray]``).

Each cell is one ``ray.remote`` task asking for its ``cpus`` and ``gpus``
(:func:`~rkdo.bench.executors.base.cell_resources`); Ray places it on a node with them free,
and :func:`ray.wait` hands back whichever finishes first. Tasks are not retried by Ray
(``max_retries=0``): a killed worker becomes an ``"error"`` record and the next ``rkdo bench``
resumes the cell from its checkpoint, after reclaiming the dead worker's lease.

The driver joins the cluster named by ``address`` (or ``RAY_ADDRESS``; ``"auto"`` for the
cluster this node belongs to), or starts a one-machine cluster and shuts it down at the end.
Every node needs this Python environment, and on a cluster of several nodes the store and the
datasets must be on shared storage (:mod:`rkdo.bench.executors.storage`). Ray is imported only
when the executor is made.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from rkdo.bench.executors.base import (
    MissingExtraError,
    Outcome,
    QueuedExecutor,
    cell_resources,
    run_job,
)
from rkdo.bench.executors.storage import check_shared
from rkdo.bench.plan import Job

__all__ = ["RayExecutor", "import_ray"]


def import_ray() -> Any:
    """The ``ray`` module, or an ``ImportError`` that names the extra to install."""
    try:
        import ray
    except ImportError:
        raise MissingExtraError("--executor ray needs Ray: pip install 'rkdo[ray]' "
                          "(or pip install 'ray[default]')") from None
    return ray


class RayExecutor(QueuedExecutor):
    """Jobs as Ray tasks with per-cell ``num_cpus`` / ``num_gpus``; at most ``workers`` at once.

    Args:
        address: the Ray cluster to join (default: ``RAY_ADDRESS``, else a new local one).
    """

    where = "Ray"
    poll_seconds = 0.0  # ray.wait itself waits

    def __init__(self, out: Path, *, workers: int = 1, threads: int | None = None,
                 resources: dict[str, Any] | None = None, address: str | None = None) -> None:
        super().__init__(out, workers=workers, threads=threads, resources=resources)
        self._ray = import_ray()
        self._owns = not self._ray.is_initialized()
        if self._owns:
            self._ray.init(address=address or os.environ.get("RAY_ADDRESS"),
                           include_dashboard=False, log_to_driver=False)
        self.nodes = sum(1 for node in self._ray.nodes() if node.get("Alive"))
        self._task = self._ray.remote(max_retries=0)(run_job)

    def check(self, jobs: list[Job]) -> None:
        super().check(jobs)
        if self.nodes < 2:
            return  # one machine: it sees what the driver sees
        where = f"this {self.nodes}-node Ray cluster"
        check_shared(self.out, "the store", where)
        for root in sorted({str(j.config["data_root"]) for j in jobs
                            if j.config.get("data_root")}):
            check_shared(root, "the data root", where)

    def _start(self, job: Job) -> Any:
        wanted = cell_resources(job, self.resources, self.threads)
        options: dict[str, Any] = {"num_cpus": wanted["cpus"], "num_gpus": wanted["gpus"],
                                   "name": job.key}
        if wanted.get("memory_gb"):
            options["memory"] = int(float(wanted["memory_gb"]) * 2**30)
        threads = self.threads or max(1, int(wanted["cpus"]))
        return self._task.options(**options).remote(job, str(self.out), threads)

    def _finished(self, handles: list[Any]) -> list[Any]:
        ready, _ = self._ray.wait(handles, num_returns=1, timeout=1.0)
        return ready

    def _outcome(self, handle: Any) -> Outcome:
        return self._ray.get(handle)

    def _cancel(self, handles: list[Any]) -> None:
        for handle in handles:
            with contextlib.suppress(Exception):  # already finished or gone
                self._ray.cancel(handle, force=True)

    def describe(self) -> str:
        return f"{super().describe()} ({self.nodes} node(s))"

    def close(self, cancel: bool = False) -> None:
        super().close(cancel)
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
