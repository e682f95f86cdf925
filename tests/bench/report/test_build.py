"""Tests for rkdo.bench.report.build: every section of report.md, and what is not a store."""

from __future__ import annotations

from pathlib import Path

import pytest

from rkdo.bench.report import write_report


def test_report_contains_every_table_and_figure(synthetic) -> None:
    store, text = synthetic.store, synthetic.text
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
    assert f"| 0 | untrained | {synthetic.floor_linear:.4f} ± " in text
    # and the raw-pixel floor row above it
    assert text.index("| 0 | raw-pixels | 0.4000 ± ") < text.index("| 0 | untrained |")


def test_report_refuses_a_directory_that_is_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a bench store"):
        write_report(tmp_path)
