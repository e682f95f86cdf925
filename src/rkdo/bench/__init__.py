"""Benchmark grids: datasets x methods x training durations x seeds, each cell stored once.

    grid       the grid file (TOML): :func:`load_grid`, :func:`parse_grid`, :func:`shipped_grids`
    plan       a grid's jobs (floor, train, profile) and their TrainConfigs: :func:`plan`
    store      results.jsonl / store.json / lock, the single writer: :func:`read_results`,
               :func:`is_done`, :func:`load_results`
    jobs       what one job does (train, evaluate the floor, profile)
    executors/ where jobs run: this process, a process pool, Ray, Slurm (the registry)
    runner     :func:`run_grid`: plan, skip what is done, run the rest, store each outcome
    flops      FLOPs and time per training step
    paper      the paper's published numbers
    report/    report.md and figures from a store

The names below load their module on first use (PEP 562, :mod:`rkdo._lazy`): ``rkdo bench
--help`` reads the executors' names (:mod:`.executors.catalogue`) without loading torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rkdo._lazy import lazy_face

if TYPE_CHECKING:
    from rkdo._io import LOCK_FILE
    from rkdo.bench.grid import (
        FLOOR,
        GRID_DIR,
        PIXELS,
        DatasetSpec,
        Grid,
        MethodSpec,
        load_grid,
        parse_grid,
        shipped_grids,
    )
    from rkdo.bench.plan import Job, plan
    from rkdo.bench.runner import BenchSummary, run_grid, versions
    from rkdo.bench.store import (
        GRID_FILE,
        RESULTS_FILE,
        RUNS_DIR,
        STORE_FILE,
        GridMismatchError,
        Results,
        is_done,
        load_results,
        read_results,
    )

__all__ = [
    "FLOOR", "PIXELS", "GRID_DIR", "GRID_FILE", "LOCK_FILE", "RESULTS_FILE", "RUNS_DIR",
    "STORE_FILE",
    "BenchSummary", "DatasetSpec", "Grid", "GridMismatchError", "Job", "MethodSpec", "Results",
    "is_done", "load_grid", "load_results", "parse_grid", "plan", "read_results", "run_grid",
    "shipped_grids", "versions",
]

_HOMES = {
    "LOCK_FILE": "rkdo._io",
    **dict.fromkeys(("FLOOR", "GRID_DIR", "PIXELS", "DatasetSpec", "Grid", "MethodSpec",
                     "load_grid", "parse_grid", "shipped_grids"), "rkdo.bench.grid"),
    **dict.fromkeys(("Job", "plan"), "rkdo.bench.plan"),
    **dict.fromkeys(("BenchSummary", "run_grid", "versions"), "rkdo.bench.runner"),
    **dict.fromkeys(("GRID_FILE", "RESULTS_FILE", "RUNS_DIR", "STORE_FILE", "GridMismatchError",
                     "Results", "is_done", "load_results", "read_results"), "rkdo.bench.store"),
}
lazy_face(__name__, _HOMES)
