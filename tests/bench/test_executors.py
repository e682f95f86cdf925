"""Tests for rkdo.bench.executors: the registry and the in-process executor's contract."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from rkdo import bench
from rkdo.bench.executors import EXECUTORS, SerialExecutor, make_executor


def test_executors_are_chosen_by_name() -> None:
    assert set(EXECUTORS) >= {"local", "process"}
    with pytest.raises(ValueError, match="choose one of: local, process"):
        make_executor("ray-typo", Path("."))
    with pytest.raises(ValueError, match="workers must be"):
        make_executor("process", Path("."), workers=0)


def test_serial_executor_runs_each_submitted_job_once_in_order(tmp_path: Path) -> None:
    jobs = [dataclasses.replace(job, skip_reason="not runnable here")
            for job in bench.plan(bench.load_grid("digits-smoke"), validate=False)[:3]]
    with make_executor("local", tmp_path) as executor:
        assert isinstance(executor, SerialExecutor)
        futures = [executor.submit(job) for job in jobs]
        assert executor.describe() == jobs[0].key
        done = list(executor.as_completed())
    assert [job.key for job, _ in done] == [job.key for job in jobs]
    assert all(outcome["status"] == "skipped" for _, outcome in done)
    assert [f.result() for f in futures] == [outcome for _, outcome in done]
    assert {"started_at", "finished_at", "wall_seconds", "threads"} <= set(done[0][1])


def test_run_grid_refuses_an_unknown_executor(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown executor"):
        bench.run_grid(bench.load_grid("digits-smoke"), tmp_path, executor="slurm",
                       progress=False)
