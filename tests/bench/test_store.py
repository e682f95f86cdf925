"""Tests for rkdo.bench.store: which stored records count, the lock, the grid check."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from rkdo import bench
from rkdo.bench.store import open_store, same_settings
from rkdo.training import EXECUTION_FIELDS


@pytest.fixture(scope="module")
def jobs() -> dict[str, bench.Job]:
    return {job.kind: job for job in bench.plan(bench.load_grid("digits-smoke"), validate=False)}


def _record(job: bench.Job, config: dict, status: str = "ok") -> dict:
    return {"key": job.key, "kind": job.kind, "config": config, "status": status}


def test_a_record_written_before_a_field_existed_still_counts(jobs: dict[str, bench.Job]
                                                              ) -> None:
    for kind in ("train", "floor"):
        job = jobs[kind]
        old = dict(job.config)
        del old["record_every"]  # as if TrainConfig gained this field after the record
        assert bench.is_done(job, _record(job, old))


def test_changed_settings_make_a_record_stale_but_execution_fields_do_not(
    jobs: dict[str, bench.Job]
) -> None:
    job = jobs["train"]
    assert not bench.is_done(job, _record(job, dict(job.config, lr=job.config["lr"] * 2)))
    moved = dict(job.config, **{name: "elsewhere" for name in ("data_root", "device")})
    assert set(moved) - set(EXECUTION_FIELDS) == set(job.config) - set(EXECUTION_FIELDS)
    assert bench.is_done(job, _record(job, moved))
    # a key TrainConfig no longer has: stale, not an error
    assert not same_settings(job, dict(job.config, removed_option=1))
    profile = jobs["profile"]
    assert bench.is_done(profile, _record(profile, dict(profile.config, device="cuda")))


def test_failed_and_newly_runnable_skipped_records_are_not_done(jobs: dict[str, bench.Job]
                                                               ) -> None:
    job = jobs["train"]
    assert not bench.is_done(job, None)
    assert not bench.is_done(job, _record(job, job.config, status="error"))
    assert not bench.is_done(job, _record(job, job.config, status="skipped"))
    skipped = dataclasses.replace(job, skip_reason="optional method skipped: lightly missing")
    assert bench.is_done(skipped, _record(skipped, job.config, status="skipped"))


def test_the_store_is_written_by_one_process_and_refuses_another_grid(tmp_path: Path) -> None:
    grid = bench.load_grid("digits-smoke")
    with open_store(tmp_path, grid) as store:
        with pytest.raises(ValueError, match="another `rkdo bench` is writing"):
            with open_store(tmp_path, grid):
                pass
        store.put({"key": "a", "status": "ok"})
        store.put({"key": "a", "status": "error"})
        store.log_session({"started": "now"})
    assert bench.read_results(tmp_path) == {"a": {"key": "a", "status": "error"}}
    assert (tmp_path / bench.GRID_FILE).read_text() == grid.text
    other = bench.parse_grid(grid.text.replace("seeds = [0, 1]", "seeds = [0]"))
    with pytest.raises(bench.GridMismatchError, match="differs in: seeds"):
        with open_store(tmp_path, other):
            pass
    (tmp_path / bench.STORE_FILE).unlink()
    with pytest.raises(bench.GridMismatchError, match="not a bench store"):
        with open_store(tmp_path, grid):
            pass
