"""Tests for rkdo.bench.report.tables: the numbers in the tables are scipy's."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy import stats as sps

from rkdo.bench.report import tables
from rkdo.evaluation import stats


def test_table_numbers_match_scipy(synthetic) -> None:
    text, linear, noise = synthetic.text, synthetic.linear, synthetic.noise
    a = np.array([linear[("rkdo", 5)]] * 6) + noise
    b = np.array([linear[("icon", 5)]] * 6) + noise
    # identical noise: the differences are constant, so the t-test is undefined
    row = re.search(r"\| 5 \| rkdo \| 0\.7200 ± [0-9.]+ \(n=6\) \| \+0\.1200 \[\+0\.1200, "
                    r"\+0\.1200\] \| -- \| [^|]+ \|", text)
    assert row, "5-epoch rkdo row of the fair linear table"
    assert np.allclose(a - b, 0.12)
    # Table 3: rkdo at 1 epoch vs icon at 2: per-seed difference -0.05 exactly
    assert "| 1 | 2 | 0.5000 ± " in text


def test_paired_comparison_in_report_equals_scipy() -> None:
    # a cell where the differences vary: the report's p-value is scipy's
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.6, 0.02, 6), rng.normal(0.55, 0.02, 6)
    result = stats.paired_comparison(a, b)
    assert result.t_pvalue == pytest.approx(sps.ttest_rel(a, b).pvalue)
    assert tables.format_p(result.t_pvalue, result.t_note) == f"{result.t_pvalue:.3g}"
    assert tables.format_p(None, "n too small (n=2 < 3)") == "n too small"
