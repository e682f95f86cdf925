"""The executors by name, each with where it runs cells in a few words, without torch.

The one list of names: :data:`rkdo.bench.executors.EXECUTORS` registers a class under each (a
test checks the two agree), and ``rkdo bench --executor`` offers them (``rkdo bench --help``
lists them and loads no torch).
"""

from __future__ import annotations

__all__ = ["SUMMARIES"]

SUMMARIES: dict[str, str] = {
    "local": "this process, one cell at a time",
    "process": "a local pool of --workers processes",
    "ray": "Ray tasks, extra rkdo[ray]",
    "submitit": "Slurm jobs, extra rkdo[slurm]",
}
"""Each executor's name and where it runs cells (``rkdo bench --help``)."""
