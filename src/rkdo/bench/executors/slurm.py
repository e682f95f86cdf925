"""Grid jobs as Slurm jobs through submitit (``--executor submitit``; extra ``rkdo[slurm]``).

Each cell is one ``submitit.AutoExecutor`` job asking for its ``cpus`` (``cpus_per_task``),
``gpus`` (``gpus_per_node``), ``memory_gb`` and ``timeout_min``; ``parameters`` add any other
submitit setting for every job (``slurm_partition``, ``slurm_account``, ...). Job folders
(submission pickle, stdout, stderr, result) live under ``DIR/jobs/<job id>/``; the worker writes
only its run directory and its job folder, the driver alone ``results.jsonl``.

Slurm jobs outlive a killed driver: the next ``rkdo bench`` leaves a cell whose run directory a
live job still owns (:mod:`rkdo.bench.lease`) alone until that job has ended, then collects or
resumes it. ``cluster="local"`` runs the jobs as local processes (submitit's ``LocalExecutor``),
which is how the tests run it. submitit is imported only when the executor is made.
"""

from __future__ import annotations

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

__all__ = ["SubmititExecutor", "JOBS_DIR", "import_submitit"]

JOBS_DIR = "jobs"
DEFAULT_TIMEOUT_MIN = 24 * 60
_ON_THIS_MACHINE = ("local", "debug")


def import_submitit() -> Any:
    """The ``submitit`` module, or an ``ImportError`` that names the extra to install."""
    try:
        import submitit
    except ImportError:
        raise MissingExtraError("--executor submitit needs submitit: pip install 'rkdo[slurm]' "
                          "(or pip install submitit)") from None
    return submitit


class SubmititExecutor(QueuedExecutor):
    """Jobs submitted with submitit, per-cell resources, at most ``workers`` at once.

    Args:
        cluster: ``"slurm"``, ``"local"`` or ``None`` (Slurm if ``sbatch`` is found, else local).
        parameters: submitit parameters for every job (``{"slurm_partition": "gpu"}``).
    """

    def __init__(self, out: Path, *, workers: int = 1, threads: int | None = None,
                 resources: dict[str, Any] | None = None, cluster: str | None = None,
                 parameters: dict[str, Any] | None = None) -> None:
        super().__init__(out, workers=workers, threads=threads, resources=resources)
        self.parameters = dict(parameters or {})
        submitit = import_submitit()
        self.cluster = cluster or submitit.AutoExecutor.which()
        if self.cluster not in _ON_THIS_MACHINE:
            check_shared(out, "the store", "Slurm nodes")  # before any folder is made
        self._executor = submitit.AutoExecutor(folder=out / JOBS_DIR / "%j", cluster=self.cluster)
        self.where = "Slurm" if self.cluster == "slurm" else f"submitit {self.cluster}"
        self.poll_seconds = 0.5 if self.cluster in _ON_THIS_MACHINE else 10.0

    def check(self, jobs: list[Job]) -> None:
        super().check(jobs)
        if self.cluster in _ON_THIS_MACHINE:
            return
        for root in sorted({str(j.config["data_root"]) for j in jobs
                            if j.config.get("data_root")}):
            check_shared(root, "the data root", "Slurm nodes")

    def _start(self, job: Job) -> Any:
        wanted = cell_resources(job, self.resources, self.threads)
        cpus = max(1, int(wanted["cpus"]))
        settings: dict[str, Any] = {
            "name": f"rkdo-{job.slug}", "cpus_per_task": cpus,
            "timeout_min": int(wanted.get("timeout_min", DEFAULT_TIMEOUT_MIN)),
        }
        if int(wanted["gpus"]):
            settings["gpus_per_node"] = int(wanted["gpus"])
        if wanted.get("memory_gb"):
            settings["mem_gb"] = float(wanted["memory_gb"])
        self._executor.update_parameters(**{**settings, **self.parameters})
        return self._executor.submit(run_job, job, str(self.out), self.threads or cpus)

    def _finished(self, handles: list[Any]) -> list[Any]:
        return [handle for handle in handles if handle.done()]

    def _outcome(self, handle: Any) -> Outcome:
        return handle.result()

    def _cancel(self, handles: list[Any]) -> None:
        for handle in handles:
            handle.cancel(check=False)
