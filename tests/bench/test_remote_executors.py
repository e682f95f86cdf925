"""rkdo bench on a local Ray cluster and on submitit's local executor, with real kills.

Each test reruns a grid after a kill and compares the store with the serial run's: same keys,
the same metrics on CPU, finished cells not redone. One Ray cluster (2 CPUs, no dashboard)
serves the module.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rkdo import bench
from rkdo.bench.lease import LEASE_FILE, read_lease

ray = pytest.importorskip("ray")
pytest.importorskip("submitit")

GRID = "digits-smoke"




@pytest.fixture(scope="module")
def serial(tmp_path_factory: pytest.TempPathFactory, metrics_of) -> dict[str, object]:
    import torch

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("serial")
    bench.run_grid(bench.load_grid(GRID), out, progress=False)
    return metrics_of(bench.read_results(out))


@pytest.fixture(scope="module")
def cluster() -> object:
    """A one-machine Ray cluster, shared by this module's tests; its GCS address."""
    context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()


def _driver(out: Path, *flags: str, grid: str = GRID) -> subprocess.Popen[bytes]:
    """``rkdo bench GRID --out OUT FLAGS`` in its own process."""
    code = ("import sys, torch; torch.set_num_threads(1); from rkdo.cli.main import main; "
            f"sys.exit(main(['bench', {grid!r}, '--out', {str(out)!r}, '--no-progress', "
            f"'--no-report', '--threads', '1', *{list(flags)!r}]))")
    return subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ, OMP_NUM_THREADS="1"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_mid_run(process: subprocess.Popen[bytes], out: Path, grid: str = GRID
                  ) -> dict[str, dict]:
    """SIGKILL the driver once a cell is stored; on the way, a second driver is refused."""
    deadline = time.monotonic() + 150
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if (out / bench.RESULTS_FILE).exists() and bench.read_results(out):
                break
            time.sleep(0.05)
        assert process.poll() is None, process.stderr.read().decode()  # type: ignore[union-attr]
        with pytest.raises(ValueError, match="another `rkdo bench` is writing"):
            bench.run_grid(bench.load_grid(grid), out, progress=False)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    before = bench.read_results(out)
    assert 1 <= len(before) < len(bench.plan(bench.load_grid(grid), validate=False))
    return before


def _check_rerun(out: Path, before: dict[str, dict], serial: dict[str, object], metrics_of,
                 grid: str = GRID, **executor: object) -> dict[str, dict]:
    summary = bench.run_grid(bench.load_grid(grid), out, progress=False, threads=1, **executor)
    left = summary.total - len(before)
    assert (summary.done_before, summary.ran, summary.failed) == (len(before), left, [])
    after = bench.read_results(out)
    for key, record in before.items():  # finished cells were not redone
        assert after[key]["finished_at"] == record["finished_at"]
    assert metrics_of(after) == {key: serial[key] for key in after}
    assert not list((out / bench.RUNS_DIR).glob(f"*/{LEASE_FILE}"))  # every lease released
    return after


def test_ray_driver_killed_then_rerun_completes_only_the_missing_cells(
    cluster: str, serial: dict[str, object], tmp_path: Path, metrics_of
) -> None:
    out = tmp_path / "ray"
    before = _kill_mid_run(_driver(out, "--executor", "ray", "--ray-address", cluster,
                                   "--workers", "2"), out)
    after = _check_rerun(out, before, serial, metrics_of, executor="ray", workers=2)
    assert {r["executor"] for r in after.values()} == {"ray"}
    assert {r["device"] for r in after.values()} == {"cpu"} and all(r["host"] for r in
                                                                    after.values())


def test_ray_worker_killed_then_rerun_completes(cluster: str, serial: dict[str, object],
                                                tmp_path: Path, metrics_of) -> None:
    out = tmp_path / "ray-worker"
    killed: list[int] = []

    def kill_first_trainer() -> None:  # the lease names the worker process that trains
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for path in (out / bench.RUNS_DIR).glob(f"*/{LEASE_FILE}"):
                holder = read_lease(path.parent)
                if holder and holder.get("pid"):
                    os.kill(holder["pid"], signal.SIGKILL)
                    killed.append(holder["pid"])
                    return
            time.sleep(0.02)

    watcher = threading.Thread(target=kill_first_trainer, daemon=True)
    watcher.start()
    first = bench.run_grid(bench.load_grid(GRID), out, progress=False, threads=1,
                           executor="ray", workers=2)
    watcher.join()
    assert killed and len(first.failed) == 1
    lost = bench.read_results(out)[first.failed[0]]
    assert lost["status"] == "error" and "Ray lost" in lost["error"]
    before = {k: r for k, r in bench.read_results(out).items() if r["status"] == "ok"}
    _check_rerun(out, before, serial, metrics_of, executor="ray", workers=2)


def test_submitit_driver_killed_then_rerun_waits_for_orphans_and_completes(
    serial: dict[str, object], tmp_path: Path, metrics_of
) -> None:
    # one seed of the smoke grid, no profile: a process per job is all the 2 cores can afford
    text = bench.load_grid(GRID).text.replace("seeds = [0, 1]", "seeds = [0]")
    grid = tmp_path / "smoke-one-seed.toml"
    grid.write_text(text.replace("profile_steps = 2", "profile = false"))
    out = tmp_path / "submitit"
    flags = ("--executor", "submitit", "--submitit-cluster", "local", "--workers", "2")
    before = _kill_mid_run(_driver(out, *flags, grid=str(grid)), out, str(grid))
    # its jobs outlive the driver: the rerun leaves their run directories to them
    after = _check_rerun(out, before, serial, metrics_of, str(grid), executor="submitit", workers=2,
                         executor_options={"cluster": "local"})
    assert set(after) == {"digits/untrained/seed0", "digits/raw-pixels/seed0", "digits/rkdo/seed0",
                          "digits/icon/seed0"}
    assert {r["executor"] for r in after.values() if r["key"] not in before} == {"submitit"}
    assert list((out / "jobs").iterdir())  # submitit's job folders live in the store
