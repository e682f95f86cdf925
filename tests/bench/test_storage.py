"""Tests for what remote executors refuse up front: node-local stores, missing extras, and the
per-cell resources a grid asks for (which are not part of its identity)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rkdo import bench
from rkdo.bench.executors import make_executor
from rkdo.bench.executors.base import MissingExtraError, cell_resources
from rkdo.bench.executors.storage import check_shared, local_reason


def test_node_local_paths_are_recognised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "under /tmp" in str(local_reason("/tmp/store"))
    assert "/dev/shm" in str(local_reason("/dev/shm/x"))
    assert local_reason("/tmpfoo/store") is None or "tmpfs" in str(local_reason("/tmpfoo"))
    with pytest.raises(ValueError, match="cannot be seen by workers on Slurm nodes.*under /tmp"):
        check_shared("/tmp/store", "the store", "Slurm nodes")
    monkeypatch.setenv("RKDO_SHARED_STORAGE", "1")
    check_shared("/tmp/store", "the store", "Slurm nodes")


def test_slurm_refuses_a_store_under_tmp_before_making_anything(tmp_path: Path) -> None:
    pytest.importorskip("submitit")
    out = Path("/tmp") / tmp_path.name / "store"
    with pytest.raises(ValueError, match="the store .* cannot be seen by workers on Slurm"):
        make_executor("submitit", out, cluster="slurm")
    assert not out.exists()


def test_a_missing_library_names_the_extra(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['ray'] = None; sys.modules['submitit'] = None\n"
            "from pathlib import Path\nfrom rkdo.bench.executors import make_executor\n"
            "for name in ('ray', 'submitit'):\n"
            "    try:\n        make_executor(name, Path('.'))\n"
            "    except ImportError as error:\n        print(error)\n")
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout
    assert "pip install 'rkdo[ray]'" in printed and "pip install 'rkdo[slurm]'" in printed
    assert issubclass(MissingExtraError, ValueError)  # the CLI prints it as one line


def test_importing_the_bench_package_imports_neither_ray_nor_submitit() -> None:
    code = "import sys, rkdo.bench, rkdo.bench.executors; print('ray' in sys.modules, " \
           "'submitit' in sys.modules)"
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout
    assert printed.split() == ["False", "False"]


def test_resources_are_per_cell_and_not_part_of_the_grid_identity() -> None:
    text = bench.load_grid("digits-smoke").text
    grid = bench.parse_grid(
        text.replace('[[methods]]\nname = "rkdo"', '[[methods]]\nname = "rkdo"\n'
                     'resources = {gpus = 2}', 1)
        + "\n[resources]\ncpus = 4\ntimeout_min = 30\n")
    assert grid.hash == bench.load_grid("digits-smoke").hash
    jobs = {job.key: job for job in bench.plan(grid, validate=False)}
    assert jobs["digits/rkdo/seed0"].resources == {"cpus": 4, "timeout_min": 30, "gpus": 2}
    assert jobs["digits/icon/seed0"].resources == {"cpus": 4, "timeout_min": 30}
    wanted = cell_resources(jobs["digits/icon/seed0"], {"cpus": 2}, threads=None)
    assert wanted == {"cpus": 2, "timeout_min": 30, "gpus": 0}
    with pytest.raises(ValueError, match=r"resources: unknown key\(s\) \['gpu'\]"):
        bench.parse_grid(text + "\n[resources]\ngpu = 1\n")
    with pytest.raises(ValueError, match="resources.gpus must be an integer >= 0"):
        bench.parse_grid(text + "\n[resources]\ngpus = 0.5\n")
    with pytest.raises(ValueError, match="asks for 2 GPUs.*torchrun"):
        cell_resources(jobs["digits/rkdo/seed0"], {}, threads=None)
