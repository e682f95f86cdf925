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
"""

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
