"""Tests for rkdo.bench.executors: the registry and the in-process executor's contract."""

from __future__ import annotations

import dataclasses
import os
import signal
import time
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


def _kill_a_worker(executor) -> None:
    """SIGKILL one process of the executor's pool (real processes, as the OOM killer would)."""
    deadline = time.monotonic() + 120
    while not executor._pool._processes:
        assert time.monotonic() < deadline, "the pool started no worker"
        time.sleep(0.05)
    os.kill(next(iter(executor._pool._processes)), signal.SIGKILL)


def _skipped_jobs(count: int) -> list:
    return [dataclasses.replace(job, skip_reason="not runnable here")
            for job in bench.plan(bench.load_grid("digits-smoke"), validate=False)[:count]]


def test_a_killed_worker_requeues_its_pools_cells_and_the_driver_goes_on(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    jobs = _skipped_jobs(3)
    with make_executor("process", tmp_path, workers=1, threads=1) as executor:
        futures = [executor.submit(job) for job in jobs]
        _kill_a_worker(executor)
        done = list(executor.as_completed())
    assert sorted(job.key for job, _ in done) == sorted(job.key for job in jobs)
    assert all(outcome["status"] == "skipped" for _, outcome in done)
    assert all(future.done() for future in futures)
    assert "a worker process died" in capsys.readouterr().err


def test_a_cell_whose_worker_keeps_dying_is_recorded_as_failed(tmp_path: Path) -> None:
    jobs = _skipped_jobs(2)
    with make_executor("process", tmp_path, workers=1, threads=1) as executor:
        executor.attempts = 1
        for job in jobs:
            executor.submit(job)
        _kill_a_worker(executor)
        done = dict((job.key, outcome) for job, outcome in executor.as_completed())
    assert set(done) == {job.key for job in jobs}
    for outcome in done.values():
        assert outcome["status"] == "error"
        assert "worker process died" in outcome["error"] and "rerun" in outcome["error"]
