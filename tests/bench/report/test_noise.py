"""The label-noise report: per-seed values read by teacher and condition, paired differences."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rkdo.bench.report.noise import build_noise_report, noise_values, recursion_table


def _store(tmp_path: Path, rows: dict[tuple[str, int], dict[str, float]]) -> Path:
    lines = []
    for (method, seed), metrics in rows.items():
        lines.append(json.dumps({
            "key": f"fashion-mnist/{method}/seed{seed}", "status": "ok", "kind": "train",
            "config": {}, "dataset": "fashion-mnist", "method": method, "seed": seed,
            "wall_seconds": 1.0, "durations": {"5": metrics}}))
    (tmp_path / "results.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_values_and_paired_difference(tmp_path: Path) -> None:
    static = [0.70, 0.72, 0.71]
    recursive = [0.73, 0.74, 0.75]
    rows = {}
    for seed in range(3):
        rows[("supcon.sym40", seed)] = {"clean_probe": static[seed], "knn_noisy_20": 0.5}
        rows[("supcon-instep.sym40", seed)] = {"clean_probe": recursive[seed],
                                               "knn_noisy_20": 0.5}
    store = _store(tmp_path, rows)
    values = noise_values(store, 5)
    assert values["sym40"]["supcon-instep"]["clean_probe"] == dict(enumerate(recursive))
    table = recursion_table(values)
    diff = np.mean(np.subtract(recursive, static))
    assert f"{diff:+.4f}" in table  # +0.0300
    assert "CI excludes 0" in table  # every paired difference is positive
    assert "40% symmetric" in build_noise_report(store, durations=(5,))


def test_one_seed_has_no_interval(tmp_path: Path) -> None:
    store = _store(tmp_path, {("supcon.sym0", 0): {"clean_probe": 0.7},
                              ("supcon-temporal.sym0", 0): {"clean_probe": 0.8}})
    assert "fewer than 2 seeds" in recursion_table(noise_values(store, 5), ("clean_probe",))


@pytest.mark.parametrize("duration", [4])
def test_missing_duration_says_so(tmp_path: Path, duration: int) -> None:
    store = _store(tmp_path, {("supcon.sym0", 0): {"clean_probe": 0.7}})
    assert "No finished label-noise cells after 4 epochs" in build_noise_report(
        store, durations=(duration,))


def test_figure_is_written(tmp_path: Path) -> None:
    from rkdo.bench.report.noise import noise_figure

    rows = {}
    for seed in range(3):
        rows[("supcon.sym20", seed)] = {"clean_probe": 0.7 + 0.01 * seed, "knn_noisy_20": 0.6}
        rows[("supcon-temporal.sym20", seed)] = {"clean_probe": 0.72 + 0.005 * seed,
                                                 "knn_noisy_20": 0.61 + 0.01 * seed}
    values = noise_values(_store(tmp_path, rows), 5)
    path = noise_figure(values, tmp_path / "noise.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
