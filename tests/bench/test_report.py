"""Tests for rkdo.bench.report.build on a synthetic store whose statistics are known in closed form."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from rkdo.bench import runner as bench
from rkdo.bench.report import build as report

GRID = """
name = "synthetic"
description = "Synthetic results with known answers."
seeds = [0, 1, 2, 3, 4, 5, 6]  # seed 6: one failed job, nothing else
durations = [1, 2, 5]
treatment = "rkdo"
baseline = "icon"

[settings]
encoder = "small-cnn"
steps_per_epoch = 10
eval_protocol = "both"

[[datasets]]
dataset = "digits"

[[methods]]
name = "rkdo"
method = "rkdo"

[[methods]]
name = "icon"
method = "icon"
"""

# per-seed offsets: mean 0, so every cell's mean is the value below
NOISE = np.array([-0.02, 0.01, 0.0, 0.02, -0.01, 0.0])
LINEAR = {("icon", 1): 0.50, ("icon", 2): 0.55, ("icon", 5): 0.60,
          ("rkdo", 1): 0.50, ("rkdo", 2): 0.70, ("rkdo", 5): 0.72}
FLOOR_LINEAR = 0.45


def _metrics(method: str, duration: int, seed_index: int) -> dict[str, float]:
    noise = float(NOISE[seed_index])
    if method == bench.FLOOR:
        linear = FLOOR_LINEAR + noise
        return {"linear_probe": linear, "paper_linear_probe": linear, "knn_acc_20": linear,
                "heldout_icon_loss": 4.0, "eval_seconds": 1.0}
    linear = LINEAR[(method, duration)] + noise
    own_loss = 2.0 / duration
    return {
        "linear_probe": linear,
        "paper_linear_probe": linear - 0.1,
        "knn_acc_20": linear - 0.05,
        "nmi": 0.3, "ari": 0.2, "paper_nmi": 0.3, "paper_ari": 0.2,
        # RKDO's own loss is 30% lower; on the common held-out loss it is 10% higher
        "train_loss": own_loss * (0.7 if method == "rkdo" else 1.0),
        "heldout_icon_loss": 3.0 * (1.1 if method == "rkdo" else 1.0) + noise,
        "eval_seconds": 1.0,
    }


def make_store(directory: Path) -> bench.Grid:
    grid = bench.parse_grid(GRID, "synthetic.toml")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / bench.GRID_FILE).write_text(grid.text)
    (directory / bench.STORE_FILE).write_text(json.dumps({"grid_name": grid.name,
                                                          "grid_hash": grid.hash}))
    lines = []
    for job in bench.plan(grid, validate=False):
        if job.seed == 6:
            continue
        record = {"key": job.key, "kind": job.kind, "dataset": job.dataset,
                  "method": job.method, "seed": job.seed, "config": job.config,
                  "status": "ok", "wall_seconds": 60.0, "started_at": "2025-01-01T00:00:00",
                  "finished_at": "2025-01-01T00:01:00", "versions": {"torch": "x"}}
        if job.kind == "profile":
            record["profile"] = [
                {"label": "rkdo depth 1", "method": "rkdo", "depth": 1, "batch_size": 64,
                 "image_size": 8, "encoder": "small-cnn", "forward_flops": 1_000_000,
                 "train_flops": 3_000_000, "loss_forward_flops": 1000,
                 "median_step_seconds": 0.010, "timed_steps": 2, "device": "cpu",
                 "threads": 1},
                {"label": "rkdo depth 3", "method": "rkdo", "depth": 3, "batch_size": 64,
                 "image_size": 8, "encoder": "small-cnn", "forward_flops": 1_002_000,
                 "train_flops": 3_004_000, "loss_forward_flops": 3000,
                 "median_step_seconds": 0.011, "timed_steps": 2, "device": "cpu",
                 "threads": 1},
            ]
        else:
            seed_index = grid.seeds.index(job.seed)
            record["durations"] = {str(d): _metrics(job.method, d, seed_index)
                                   for d in job.durations}
            record["images_per_s"] = 1000.0
        lines.append(json.dumps(record))
    # a failed job is listed, not counted
    failed = json.loads(lines[-2])
    failed.update(key="digits/icon/seed6", seed=6, status="error", error="RuntimeError: boom")
    lines.append(json.dumps(failed))
    (directory / bench.RESULTS_FILE).write_text("\n".join(lines) + "\n")
    return grid


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    store = tmp_path_factory.mktemp("store")
    make_store(store)
    path = report.write_report(store)
    return store, path.read_text()


def test_report_contains_every_table_and_figure(written: tuple[Path, str]) -> None:
    store, text = written
    for heading in ("Table 1: final training loss", "Table 1 (fair): held-out static I-Con",
                    "Table 2: linear eval, paper protocol", "Table 3: early rkdo vs later icon",
                    "Table 4: every metric at 2 epochs", "Table 2 (fair): linear probe",
                    "Table 3 (fair)", "Table 4 (fair)", "Compute efficiency",
                    "Cost per training step", "Verdicts on the paper's claims",
                    "reuse one run"):
        assert heading in text, heading
    for name in ("loss_vs_duration", "early_treatment_vs_late_baseline", "early_learning",
                 "loss_improvement", "accuracy_vs_duration"):
        png = store / "figures" / f"{name}.png"
        assert png.exists() and png.read_bytes()[:4] == b"\x89PNG"
        assert png.stat().st_size < 200_000
        assert f"(figures/{name}.png)" in text
    assert "`digits/icon/seed6` (error): RuntimeError: boom" in text
    # the floor row, with the untrained encoder's mean
    assert f"| 0 | untrained | {FLOOR_LINEAR:.4f} ± " in text


def test_table_numbers_match_scipy(written: tuple[Path, str]) -> None:
    _, text = written
    a = np.array([LINEAR[("rkdo", 5)]] * 6) + NOISE
    b = np.array([LINEAR[("icon", 5)]] * 6) + NOISE
    # identical noise: the differences are constant, so the t-test is undefined
    row = re.search(r"\| 5 \| rkdo \| 0\.7200 ± [0-9.]+ \(n=6\) \| \+0\.1200 \[\+0\.1200, "
                    r"\+0\.1200\] \| -- \| [^|]+ \|", text)
    assert row, "5-epoch rkdo row of the fair linear table"
    assert np.allclose(a - b, 0.12)
    # Table 3: rkdo at 1 epoch vs icon at 2: per-seed difference -0.05 exactly
    assert "| 1 | 2 | 0.5000 ± " in text


def test_verdicts_follow_the_numbers(written: tuple[Path, str]) -> None:
    _, text = written
    # training loss 30% lower everywhere: reproduced, but 10% higher on the common loss
    assert "30.0% to 30.0% lower (mean 30.0%)" in text
    assert "**reproduced**" in text
    assert "does not carry over" in text
    # icon's best linear 0.60 (5 epochs); rkdo crosses it between 1 (0.50) and 2 (0.70)
    # epochs at 1.5 epochs: 70% fewer epochs -> supported
    assert "after 1.5 epochs, 70% fewer" in text
    # rkdo at 2 epochs (0.70) vs icon at 5 (0.60): +0.1 exactly on every seed
    assert re.search(r"digits: \+0\.1000 \[\+0\.1000, \+0\.1000\], \*\*supported", text)
    # FLOPs: 1.002M vs 1.0M forward = +0.2% > 0.03%
    assert "+0.2000% FLOPs" in text and "**not reproduced** in counted FLOPs" in text


def test_paired_comparison_in_report_equals_scipy() -> None:
    # a cell where the differences vary: the report's p-value is scipy's
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.6, 0.02, 6), rng.normal(0.55, 0.02, 6)
    from rkdo.evaluation import stats

    result = stats.paired_comparison(a, b)
    assert result.t_pvalue == pytest.approx(sps.ttest_rel(a, b).pvalue)
    assert report._p(result.t_pvalue, result.t_note) == f"{result.t_pvalue:.3g}"
    assert report._p(None, "n too small (n=2 < 3)") == "n too small"


def test_report_refuses_a_directory_that_is_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a bench store"):
        report.write_report(tmp_path)
