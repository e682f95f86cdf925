"""Tests for rkdo.bench.lease: one live owner per run directory, dead owners reclaimed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rkdo import bench
from rkdo.bench.jobs import execute
from rkdo.bench.lease import LEASE_FILE, LeaseHeldError, lease, live_holder, read_lease


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _write(run_dir: Path, **fields: object) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    holder = {"owner": "other", "host": socket.gethostname(), "pid": os.getpid(),
              "heartbeat": time.time(), **fields}
    (run_dir / LEASE_FILE).write_text(json.dumps(holder))


def test_a_lease_is_held_while_the_block_runs_and_released_after(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with lease(run_dir, heartbeat_seconds=0.05) as mine:
        first = read_lease(run_dir)
        assert first is not None and first["owner"] == mine["owner"]
        assert first["pid"] == os.getpid() and first["host"] == socket.gethostname()
        with pytest.raises(LeaseHeldError, match="owned by a live job"):
            with lease(run_dir):
                pass
        time.sleep(0.3)
        beat = read_lease(run_dir)
        assert beat is not None and beat["heartbeat"] > first["heartbeat"]
    assert read_lease(run_dir) is None and live_holder(run_dir) is None
    assert [p.name for p in run_dir.iterdir()] == []  # no temporary files left


def test_a_live_owner_elsewhere_is_respected(tmp_path: Path) -> None:
    _write(tmp_path, host="another-node", pid=1, job="4711")
    assert live_holder(tmp_path) is not None
    with pytest.raises(LeaseHeldError, match="host another-node, pid 1, job 4711"):
        with lease(tmp_path):
            pass


@pytest.mark.parametrize("death", ["process gone on this host", "no heartbeat for an hour"])
def test_a_dead_owners_lease_is_reclaimed(tmp_path: Path, death: str) -> None:
    if death.startswith("process"):
        _write(tmp_path, pid=_dead_pid())
    else:
        _write(tmp_path, host="another-node", heartbeat=time.time() - 3600)
    assert live_holder(tmp_path) is None
    with lease(tmp_path) as mine:
        holder = read_lease(tmp_path)
        assert holder is not None and holder["owner"] == mine["owner"]


def test_a_train_job_refuses_a_run_directory_a_live_job_owns(tmp_path: Path) -> None:
    job = next(j for j in bench.plan(bench.load_grid("digits-smoke"), validate=False)
               if j.kind == "train")
    _write(tmp_path / bench.RUNS_DIR / job.slug, host="another-node")
    outcome = execute(job, tmp_path)
    assert outcome["status"] == "error" and "LeaseHeldError" in outcome["error"]
    assert outcome["host"] == socket.gethostname() and outcome["device"] == "cpu"
    assert not (tmp_path / bench.RUNS_DIR / job.slug / "config.json").exists()


@pytest.mark.parametrize("host", ["this host", "another-node"])
def test_a_lease_from_the_future_is_stale_and_reclaimed_with_how_to_clear_it(
        tmp_path: Path, host: str) -> None:
    """A heartbeat a day ahead (a wrong clock) once made a driver wait for a day; a live pid on
    this host does not make it live either."""
    _write(tmp_path, heartbeat=time.time() + 86400,
           **({} if host == "this host" else {"host": host}))
    assert live_holder(tmp_path) is None
    with pytest.warns(UserWarning, match=r"s in the future.*stale.*NTP.*`rm .*lease\.json`"):
        with lease(tmp_path) as mine:
            holder = read_lease(tmp_path)
            assert holder is not None and holder["owner"] == mine["owner"]
    _write(tmp_path, heartbeat=time.time() + 5)  # clock skew of seconds: still a live job
    assert live_holder(tmp_path) is not None
