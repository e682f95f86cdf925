"""Symbolic links inside a store are never written through: its ``.lock`` and a cell's run
directory that resolves outside the store are refused, the user's files kept (real files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rkdo import bench
from rkdo._io import LOCK_FILE
from rkdo.cli.main import main

TINY_GRID = """
name = "tiny"
seeds = [0]
durations = [1]
[settings]
batch_size = 32
steps_per_epoch = 2
embedding_dim = 8
hidden_dim = 16
width = 4
eval_protocol = "none"
[[datasets]]
dataset = "digits"
[[methods]]
name = "rkdo"
"""


@pytest.fixture
def grid_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_GRID)
    return path


def test_a_store_lock_linking_to_a_users_file_is_refused(tmp_path: Path, grid_file: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    store = tmp_path / "store"
    store.mkdir()
    users = tmp_path / "notes.txt"
    users.write_text("keep me\n")
    (store / LOCK_FILE).symlink_to(users)
    assert main(["bench", str(grid_file), "--out", str(store), "--no-progress"]) == 2
    assert "not a regular file" in capsys.readouterr().err
    assert users.read_text() == "keep me\n"


def test_a_cell_that_resolves_outside_the_store_fails_and_the_run_is_kept(
        tmp_path: Path, grid_file: Path) -> None:
    store = tmp_path / "store"
    job = next(job for job in bench.plan(bench.load_grid(grid_file)) if job.kind == "train")
    mine = tmp_path / "my-own-run"
    mine.mkdir()
    (mine / "config.json").write_text('{"mine": true}\n')
    (store / bench.RUNS_DIR).mkdir(parents=True)
    (store / bench.RUNS_DIR / job.slug).symlink_to(mine, target_is_directory=True)
    summary = bench.run_grid(bench.load_grid(grid_file), store, progress=False)
    assert summary.failed == [job.key]
    record = bench.read_results(store)[job.key]
    assert "outside the store" in record["error"] and "rm " in record["error"]
    assert sorted(p.name for p in mine.iterdir()) == ["config.json"]
    assert (mine / "config.json").read_text() == '{"mine": true}\n'
