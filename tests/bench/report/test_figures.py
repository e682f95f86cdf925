"""Tests for rkdo.bench.report.figures: drawing leaves the caller's matplotlib alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_figures_do_not_switch_the_callers_backend_or_load_pyplot(synthetic,
                                                                  tmp_path: Path) -> None:
    code = (
        "import sys, matplotlib; matplotlib.use('svg'); "
        "from rkdo.bench.report import make_figures; from rkdo.bench import load_results; "
        f"figures = make_figures(load_results({str(synthetic.store)!r}), {str(tmp_path)!r}); "
        "assert len(figures) == 5, figures; "
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend(); "
        "sys.exit(int('matplotlib.pyplot' in sys.modules))"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(
        f"{name}.png" for name in ("loss_vs_duration", "early_treatment_vs_late_baseline",
                                   "early_learning", "loss_improvement", "accuracy_vs_duration"))


def test_figures_are_fit_for_a_page(synthetic, tmp_path: Path) -> None:
    """Before: 288 px wide at 80 dpi, code names as titles, no y-labels, ticks at 0.5 epochs,
    bars from 0. Now: >= 150 dpi and at most a page wide, display names, labelled axes, integer
    epoch ticks, means as points with 95% CIs, the legend outside the panels."""
    import matplotlib
    from matplotlib.container import BarContainer
    from PIL import Image

    from rkdo._figure_style import DPI
    from rkdo.bench import load_results
    from rkdo.bench.report import figures
    from rkdo.bench.report.view import View

    written = figures.make_figures(load_results(synthetic.store), tmp_path)
    for path in written.values():
        with Image.open(path) as image:
            assert image.info["dpi"][0] >= 150
            assert round(image.info["dpi"][0]) == DPI  # the one resolution rkdo.viz uses too
            assert image.size[0] / image.info["dpi"][0] <= 7.6  # inches: a page's width
    view = View(load_results(synthetic.store))
    colours = {m.name: f"C{k}" for k, m in enumerate(view.grid.methods)}
    with matplotlib.rc_context(figures._STYLE):
        for name, draw in figures._DRAW.items():
            figure = draw(view, colours)
            axes = [ax for ax in figure.axes if ax.axison]
            assert figure.legends and all(ax.get_legend() is None for ax in axes), name
            for ax in axes:
                assert ax.get_ylabel(), name
                assert "_" not in ax.get_title(loc="left") + ax.get_title(), name
                assert not any(isinstance(c, BarContainer) for c in ax.containers), name
                if "epochs" in ax.get_xlabel():
                    ticks = ax.get_xticks()
                    assert all(float(t).is_integer() for t in ticks), (name, ticks)


def test_the_confidence_interval_is_the_t_interval_of_the_mean() -> None:
    from scipy import stats as scipy_stats

    from rkdo.bench.report.figures import mean_ci

    values = [0.80, 0.81, 0.83, 0.79]
    low, high = scipy_stats.t.interval(0.95, 3, loc=sum(values) / 4,
                                       scale=scipy_stats.sem(values))
    mean, half = mean_ci(values)
    assert abs((mean - half) - low) < 1e-12 and abs((mean + half) - high) < 1e-12
    assert mean_ci([0.5]) == (0.5, 0.0)
