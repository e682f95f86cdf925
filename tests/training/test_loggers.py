"""Loggers beside metrics.jsonl: ``--csv`` (metrics.csv follows the log, also after a resume
drops lines) and ``--wandb`` (Weights & Biases in offline mode, one W&B run per directory)."""

from __future__ import annotations

import csv
import json
import sys
import types
from dataclasses import replace
from pathlib import Path

import pytest

from rkdo.training import TrainConfig, train


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_csv_is_the_log_as_a_table_and_follows_a_resume(tmp_path: Path,
                                                        fast: TrainConfig) -> None:
    run = tmp_path / "run"
    config = replace(fast, csv=True)
    train(config, run, progress=False, stop_after=3)
    with open(run / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["step"]) for row in rows] == [r["step"] for r in _records(run)] == [1, 2, 3]
    train(None, run, resume=True, progress=False)
    with open(run / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    records = _records(run)
    assert len(rows) == len(records)
    for row, record in zip(rows, records, strict=True):
        assert row["kind"] == record.get("kind", "train")
        numbers = {key: value for key, value in record.items() if key != "kind"}
        assert {key: float(row[key]) for key in numbers} == numbers  # exactly, as written


def test_wandb_logs_offline_under_the_run_directory(
    tmp_path: Path, fast: TrainConfig, monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: dict[str, list] = {"init": [], "log": [], "finish": []}

    class FakeRun:
        def log(self, values: dict, step: int) -> None:
            calls["log"].append((step, values))

        def finish(self) -> None:
            calls["finish"].append(True)

    def init(**kwargs: object) -> FakeRun:
        calls["init"].append(kwargs)
        return FakeRun()

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=init))
    run = tmp_path / "run"
    train(replace(fast, wandb=True), run, progress=False)
    (kwargs,) = calls["init"]
    assert kwargs["mode"] == "offline" and kwargs["dir"] == str(run)
    assert kwargs["config"]["wandb"] is True and kwargs["resume"] == "allow"
    steps = [step for step, _ in calls["log"]]
    assert steps == [r["step"] for r in _records(run)]
    assert calls["log"][0][1]["train/loss"] == _records(run)[0]["loss"]
    assert calls["finish"] == [True]


def test_wandb_without_the_package_is_refused_before_anything_is_written(
    tmp_path: Path, fast: TrainConfig, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ValueError, match=r"--wandb needs `pip install rkdo\[wandb\]`"):
        train(replace(fast, wandb=True), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
