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
