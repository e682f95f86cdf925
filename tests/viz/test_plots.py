"""Tests of rkdo.viz.plots: metrics read from a run, curve pixels, the panels of runs
evaluated once."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from rkdo.viz.plots import plot_curves, read_metrics


def test_read_metrics_and_curves_png(tmp_path, fake_run, pixels) -> None:
    runs = [fake_run(tmp_path / "icon", seed=0), fake_run(tmp_path / "rkdo", seed=1)]
    train, evaluation = read_metrics(runs[1])
    assert [r["step"] for r in train] == list(range(10, 101, 10))
    assert train[0]["loss"] == pytest.approx(2.0 - 0.1 - 0.1)
    assert [r["linear_probe"] for r in evaluation] == pytest.approx([0.6, 0.65])
    out = plot_curves(runs, tmp_path / "curves.png", dpi=100)
    image = np.asarray(Image.open(out).convert("RGB"))
    # loss + 4 metrics in 3 columns of 2.4 inches (a page's width), 2 rows
    assert image.shape == (round((2 * 2.42 + 0.5) * 100), round((3 * 2.4 + 0.4) * 100), 3)
    for color in ("#1f77b4", "#ff7f0e"):  # C0 and C1: one line per run
        assert np.all(np.abs(image.astype(int) - pixels.rgb(color)) <= 40, axis=-1).sum() > 300
    with pytest.raises(ValueError, match="available"):
        plot_curves(runs[:1], tmp_path / "x.png", metrics=["nope"])
    with pytest.raises(ValueError, match="one name per run"):
        plot_curves(runs, tmp_path / "x.png", names=["a"])
    with pytest.raises(ValueError, match="not a run directory"):
        read_metrics(tmp_path)


def test_final_eval_stands_in_for_a_log_without_evaluations(tmp_path, fake_run) -> None:
    run = fake_run(tmp_path / "run")
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join(x for x in lines if '"eval"' not in x) + "\n")
    _, evaluation = read_metrics(run)
    assert evaluation == [{"epoch": 2, "step": 100, "linear_probe": 0.6}]


def _one_evaluation(run) -> None:
    """Keep one evaluation line (with its timing) in a fake run's log."""
    import json

    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in lines if r.get("kind") == "eval"]
    kept = [r for r in lines if r.get("kind") != "eval"] + [{**evals[-1], "eval_seconds": 9.0}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))


def test_runs_evaluated_once_get_a_few_panels_of_points_and_no_timings(tmp_path,
                                                                      fake_run) -> None:
    """`rkdo viz curves` drew 9 panels of single dots, eval_seconds among them, for runs that
    were evaluated once; now: the loss, one panel of scores, one of losses, display names."""
    from rkdo.viz import plots

    runs = [fake_run(tmp_path / name, seed=seed) for seed, name in enumerate(("a", "b"))]
    for run in runs:
        _one_evaluation(run)
    logs = [read_metrics(run) for run in runs]
    metrics = plots._metric_names([evaluation for _, evaluation in logs])
    assert "eval_seconds" not in metrics and "images_per_s" not in metrics
    with pytest.raises(ValueError, match="available"):
        plot_curves(runs, tmp_path / "x.png", metrics=["eval_seconds"])
    figure = plots._curves_figure(logs, ["a", "b"], metrics, False, 100)
    visible = [ax for ax in figure.axes if ax.axison]
    assert len(visible) == 3
    scores = visible[1]
    assert [t.get_text() for t in scores.get_yticklabels()] == ["linear probe", "20-NN",
                                                                 "k-means NMI"]
    assert [t.get_text() for t in visible[2].get_yticklabels()] == ["held-out I-Con loss"]
    assert all(ax.get_xlabel() for ax in visible)
    # PNG at 200 dpi by default
    out = plot_curves(runs, tmp_path / "c.png")
    assert round(Image.open(out).info["dpi"][0]) == 200
