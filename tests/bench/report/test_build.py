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


@pytest.mark.parametrize("kept", ["none", "floors", "treatment-only", "one-seed"])
def test_a_partial_store_is_reported_with_what_is_missing(tmp_path: Path, kept: str,
                                                          store_maker) -> None:
    """A grid still running or killed: before, a raw KeyError, a figures/ folder and no
    report.md. Now the report is written from what exists and names the jobs still missing."""
    import json

    from rkdo import bench

    jobs = bench.plan(store_maker(tmp_path), validate=False)
    results = tmp_path / "results.jsonl"
    records = [json.loads(line) for line in results.read_text().splitlines()]
    keep = {"none": lambda r: False,
            "floors": lambda r: r["kind"] == "floor",
            "treatment-only": lambda r: r.get("method") == "rkdo" and r["kind"] == "train",
            "one-seed": lambda r: r.get("seed") in (0, None) and r["status"] == "ok"}[kept]
    kept_records = [r for r in records if keep(r)]
    results.write_text("".join(json.dumps(r) + "\n" for r in kept_records))
    text = write_report(tmp_path).read_text()
    missing = len(jobs) - len(kept_records)
    assert f"**Incomplete store: {missing} of {len(jobs)} jobs have no result yet**" in text
    assert (tmp_path / "report.md").exists()
    assert "rerun `rkdo bench` with this grid" in text


@pytest.mark.parametrize("content", ["{}", "[]", '{"grid_hash": "x", "sessions": 3}'])
def test_a_broken_store_file_is_one_line_with_the_fix(tmp_path: Path, content: str,
                                                      store_maker) -> None:
    grid = store_maker(tmp_path)
    (tmp_path / "store.json").write_text(content)
    with pytest.raises(ValueError, match=r"store.json is not a store file .*write "
                                         rf'{{"grid_name": "synthetic", "grid_hash": '
                                         rf'"{grid.hash}"}}') as error:
        write_report(tmp_path)
    assert "\n" not in str(error.value)
