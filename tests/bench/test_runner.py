"""Tests for rkdo.bench.runner: a grid end to end, resume after SIGKILL, failures, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rkdo import bench
from rkdo.bench.report import write_report
from rkdo.cli.main import main as bench_main

TIMING_KEYS = ("eval_seconds", "images_per_s")




@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bench.BenchSummary]:
    """The shipped smoke grid, run once, uninterrupted."""
    import torch

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("smoke")
    summary = bench.run_grid(bench.load_grid("digits-smoke"), out, progress=False)
    write_report(out)  # what `rkdo bench` does after the grid has run
    return out, summary


def test_invalid_method_is_refused_before_anything_runs(tmp_path: Path) -> None:
    grid = bench.parse_grid("seeds=[0]\ndurations=[1]\n[[datasets]]\ndataset='digits'\n"
                            "[[methods]]\nname='rkdo'\nalpha=2.0\n")
    with pytest.raises(ValueError, match="alpha"):
        bench.run_grid(grid, tmp_path / "store", progress=False)
    assert not (tmp_path / "store" / bench.RESULTS_FILE).exists()


# ----------------------------------------------------------------------------- running


def test_smoke_grid_end_to_end(smoke: tuple[Path, bench.BenchSummary]) -> None:
    out, summary = smoke
    assert (summary.total, summary.done_before, summary.ran) == (9, 0, 9)
    assert summary.failed == [] and summary.skipped == []
    records = bench.read_results(out)
    assert set(records) == {"digits/untrained/seed0", "digits/raw-pixels/seed0",
                            "digits/rkdo/seed0", "digits/icon/seed0",
                            "digits/untrained/seed1", "digits/raw-pixels/seed1",
                            "digits/rkdo/seed1", "digits/icon/seed1", "digits/profile"}
    run = records["digits/rkdo/seed1"]
    assert run["status"] == "ok" and run["seed"] == 1 and run["config"]["seed"] == 1
    assert run["grid_hash"] == bench.load_grid("digits-smoke").hash
    assert set(run["versions"]) >= {"python", "torch", "rkdo"}
    assert run["wall_seconds"] > 0
    assert set(run["durations"]) == {"1", "2"}
    for metrics in run["durations"].values():
        assert 0.0 <= metrics["linear_probe"] <= 1.0 and metrics["train_loss"] > 0
    # the stored training loss is the epoch mean logged by the trainer
    logged = [json.loads(line) for line in
              (out / run["run_dir"] / "metrics.jsonl").read_text().splitlines()]
    epoch2 = next(e for e in logged if e.get("kind") == "epoch" and e["epoch"] == 2)
    assert run["durations"]["2"]["train_loss"] == epoch2["mean_loss"]
    assert set(records["digits/untrained/seed0"]["durations"]) == {"0"}
    labels = [row["label"] for row in records["digits/profile"]["profile"]]
    assert labels == ["rkdo depth 1", "rkdo depth 3", "icon"]
    assert (out / "report.md").exists()
    text = (out / "report.md").read_text()
    assert "Table 1: final training loss" in text and "Table 2" in text


def test_rerun_skips_finished_cells(smoke: tuple[Path, bench.BenchSummary]) -> None:
    out, _ = smoke
    before = (out / bench.RESULTS_FILE).read_text()
    summary = bench.run_grid(bench.load_grid("digits-smoke"), out, progress=False)
    assert (summary.done_before, summary.ran) == (9, 0)
    assert (out / bench.RESULTS_FILE).read_text() == before


def test_reusing_one_run_equals_retraining_for_a_shorter_duration(
    smoke: tuple[Path, bench.BenchSummary], tmp_path: Path
) -> None:
    from rkdo.training import TrainConfig, train

    out, _ = smoke
    record = bench.read_results(out)["digits/icon/seed0"]
    config = dict(record["config"], epochs=1, eval_epochs=[])
    short = train(TrainConfig.from_dict(config), tmp_path / "one-epoch", progress=False)
    reused = record["durations"]["1"]
    for key, value in short.items():
        if key not in TIMING_KEYS + ("epoch", "step"):
            assert reused[key] == pytest.approx(value, abs=1e-9), key


def test_another_grid_is_refused_unless_allowed(smoke: tuple[Path, bench.BenchSummary],
                                                tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(smoke[0], out)
    text = bench.load_grid("digits-smoke").text
    grown = bench.parse_grid(text.replace("seeds = [0, 1]", "seeds = [0, 1, 2]"))
    with pytest.raises(bench.GridMismatchError, match="differs in: seeds"):
        bench.run_grid(grown, out, progress=False)
    assert bench_main(["bench", str(_write(tmp_path / "g.toml", grown.text)), "--out", str(out),
                       "--no-progress", "--no-report"]) == 2
    summary = bench.run_grid(grown, out, allow_grid_change=True, progress=False)
    # only seed 2's two floors and two runs are new; the profile's settings did not change
    assert (summary.done_before, summary.ran) == (9, 4)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_failing_cell_is_recorded_and_the_grid_goes_on(tmp_path: Path) -> None:
    grid = bench.parse_grid(f"""
seeds = [0]
durations = [1]
profile = false
[settings]
encoder = "small-cnn"
steps_per_epoch = 2
eval_protocol = "none"
[[datasets]]
dataset = "fashion-mnist"
data_root = "{tmp_path / 'nothing-here'}"
[[datasets]]
dataset = "digits"
[[methods]]
name = "icon"
""")
    # the data check would refuse the missing dataset up front: let the cell fail instead
    summary = bench.run_grid(grid, tmp_path / "store", progress=False, check_data_first=False)
    # eval_protocol "none": no floor jobs, nothing to evaluate
    assert summary.total == 2 and summary.failed == ["fashion-mnist/icon/seed0"]
    records = bench.read_results(tmp_path / "store")
    assert records["digits/icon/seed0"]["status"] == "ok"
    failed = records["fashion-mnist/icon/seed0"]
    assert failed["status"] == "error" and "Fashion-MNIST" in failed["error"]
    assert "Traceback" in failed["traceback"]
    # a rerun retries the failed cells only
    again = bench.run_grid(grid, tmp_path / "store", progress=False, check_data_first=False)
    assert (again.done_before, again.ran, again.failed) == (1, 1, ["fashion-mnist/icon/seed0"])


def test_a_grid_killed_with_sigkill_resumes_to_the_same_results(
    smoke: tuple[Path, bench.BenchSummary], tmp_path: Path, metrics_of
) -> None:
    out = tmp_path / "killed"
    code = ("import sys, torch; torch.set_num_threads(1); from rkdo.cli.main import main; "
            f"sys.exit(main(['bench', 'digits-smoke', '--out', {str(out)!r}, '--no-progress', "
            "'--no-report']))")
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    process = subprocess.Popen([sys.executable, "-c", code], env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    mid_run = False
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            stored = bench.read_results(out) if (out / bench.RESULTS_FILE).exists() else {}
            running = [p for p in (out / bench.RUNS_DIR).glob("*/checkpoint.pt")
                       if p.parent.name.replace("_", "/") not in stored] \
                if (out / bench.RUNS_DIR).exists() else []
            if stored and (running or len(stored) >= 3):
                mid_run = bool(running)
                break
            time.sleep(0.02)
        assert process.poll() is None, process.stderr.read().decode()
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    before = bench.read_results(out)
    assert 1 <= len(before) < 9

    summary = bench.run_grid(bench.load_grid("digits-smoke"), out, progress=False)
    assert summary.done_before == len(before) and summary.ran == 9 - len(before)
    after = bench.read_results(out)
    for key, record in before.items():  # finished cells were not redone
        assert after[key]["finished_at"] == record["finished_at"]
    if mid_run:
        assert any(r.get("resumed") for r in after.values())
    assert metrics_of(after) == metrics_of(bench.read_results(smoke[0]))


def test_parallel_workers_give_the_same_results(smoke: tuple[Path, bench.BenchSummary],
                                               tmp_path: Path, metrics_of) -> None:
    summary = bench.run_grid(bench.load_grid("digits-smoke"), tmp_path / "parallel",
                             progress=False, workers=2, threads=1)
    assert summary.ran == 9 and summary.failed == []
    records = bench.read_results(tmp_path / "parallel")
    assert {r["workers"] for r in records.values()} == {2}
    assert metrics_of(records) == metrics_of(bench.read_results(smoke[0]))


def test_cli_dry_run_and_list(smoke: tuple[Path, bench.BenchSummary],
                              capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = smoke
    assert bench_main(["bench", "--list"]) == 0
    assert "fashion-cpu" in capsys.readouterr().out
    assert bench_main(["bench", "digits-smoke", "--out", str(out), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "ok       train    digits/rkdo/seed0" in printed
    assert "9 of 9 jobs done" in printed
    assert bench_main(["bench", "no-such-grid", "--out", str(out)]) == 2
    assert "shipped grids" in capsys.readouterr().err
    assert bench_main(["report", str(out)]) == 0
