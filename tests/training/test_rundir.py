"""The run directory: refusals to overwrite, metrics truncation, old run dirs still load."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

from rkdo.training import RunExistsError, TrainConfig, load_run, train
from rkdo.training.rundir import CHECKPOINT_FILE, METRICS_FILE, save_checkpoint, truncate_metrics


def test_an_existing_run_is_never_overwritten_by_accident(
    tmp_path: Path, fast: TrainConfig
) -> None:
    run = tmp_path / "run"
    train(replace(fast, epochs=1), run, progress=False)
    before = (run / "checkpoint.pt").read_bytes()
    with pytest.raises(RunExistsError, match="already holds this run.*--resume"):
        train(replace(fast, epochs=1), run, progress=False)
    with pytest.raises(RunExistsError, match="differs in: alpha"):
        train(replace(fast, epochs=1, alpha=0.3), run, progress=False)
    assert (run / "checkpoint.pt").read_bytes() == before
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(RunExistsError, match="not empty"):
        train(fast, other, progress=False)
    train(replace(fast, epochs=1, alpha=0.3), run, progress=False, overwrite=True)
    assert json.loads((run / "config.json").read_text())["alpha"] == 0.3


def test_an_old_run_without_a_newer_config_key_loads_and_resumes(
    tmp_path: Path, fast: TrainConfig
) -> None:
    run = tmp_path / "run"
    train(fast, run, progress=False, stop_after=3)
    stored = asdict(fast)
    del stored["record_every"]  # a config.json written before that field existed
    (run / "config.json").write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")
    assert load_run(run).step == 3
    train(None, run, resume=True, progress=False)
    assert load_run(run).step == 8


def test_nothing_to_resume_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nothing to resume in .*config.json and checkpoint.pt"):
        train(None, tmp_path, resume=True, progress=False)


def test_truncate_metrics_keeps_the_lines_up_to_the_checkpoint(tmp_path: Path) -> None:
    records = [{"step": 1, "loss": 2.0}, {"kind": "epoch", "step": 2}, {"step": 3, "loss": 1.0}]
    (tmp_path / METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in records))
    truncate_metrics(tmp_path, 2)
    lines = (tmp_path / METRICS_FILE).read_text().splitlines()
    assert [json.loads(line) for line in lines] == records[:2]
    truncate_metrics(tmp_path / "absent", 2)  # no log yet: nothing to do


def test_checkpoint_is_replaced_atomically(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, {"step": 1, "weights": torch.ones(2)})
    save_checkpoint(tmp_path, {"step": 2, "weights": torch.zeros(2)})
    assert torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_FILE]  # no temporary left
