"""Tests for rkdo.evaluation.stats against closed forms, exact distributions and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from rkdo.evaluation import stats

A = [0.31, 0.29, 0.35, 0.30, 0.33, 0.28, 0.36]
B = [0.30, 0.25, 0.31, 0.31, 0.27, 0.26, 0.30]


def test_summarize_matches_closed_form() -> None:
    values = [1.0, 2.0, 4.0]
    summary = stats.summarize(values)
    assert summary.n == 3
    assert summary.mean == pytest.approx(7 / 3)
    # sample variance: sum (x - 7/3)^2 / 2 = (16/9 + 1/9 + 25/9) / 2 = 7/3
    assert summary.std == pytest.approx(math.sqrt(7 / 3))
    assert summary.format(2) == "2.33 ± 1.53"
    one = stats.summarize([0.5])
    assert one.n == 1 and one.mean == 0.5 and math.isnan(one.std) and one.format(1) == "0.5"
    assert stats.summarize([]).n == 0


def test_paired_t_test_matches_closed_form_and_scipy() -> None:
    result = stats.paired_comparison(A, B)
    diff = np.subtract(A, B)
    n = diff.size
    t = diff.mean() / (diff.std(ddof=1) / math.sqrt(n))
    p = 2 * sps.t.sf(abs(t), df=n - 1)
    assert result.n == n
    assert result.mean_diff == pytest.approx(diff.mean())
    assert result.t_statistic == pytest.approx(t)
    assert result.t_pvalue == pytest.approx(p)
    reference = sps.ttest_rel(A, B)
    assert result.t_pvalue == pytest.approx(reference.pvalue)
    assert result.t_note == ""


def test_wilcoxon_matches_exact_distribution() -> None:
    # six positive differences with distinct magnitudes: W+ = 1+...+6 = 21, the most extreme of
    # 2^6 equally likely sign patterns, so the exact two-sided p is 2 / 64
    a = [1.1, 2.2, 3.3, 4.4, 5.5, 6.6]
    b = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    result = stats.paired_comparison(a, b)
    assert result.wilcoxon_pvalue == pytest.approx(2 / 64)
    assert result.wilcoxon_note == ""
    # scipy reports min(W+, W-) = 0 for the two-sided test
    assert result.wilcoxon_statistic == pytest.approx(0.0)
    assert stats.min_wilcoxon_pvalue(6) == pytest.approx(2 / 64)
    assert stats.min_wilcoxon_pvalue(5) == pytest.approx(0.0625)
    # a mixed case against scipy itself
    mixed = stats.paired_comparison(A, B)
    assert mixed.wilcoxon_pvalue == pytest.approx(sps.wilcoxon(A, B).pvalue)


def test_small_n_is_refused_with_a_reason() -> None:
    two = stats.paired_comparison([0.3, 0.4], [0.2, 0.35])
    assert two.t_pvalue is None and "n too small" in two.t_note
    assert two.wilcoxon_pvalue is None and "n too small" in two.wilcoxon_note
    five = stats.paired_comparison([1, 2, 3, 4, 5.5], [0, 0, 0, 0, 0])
    assert five.t_pvalue is not None
    assert five.wilcoxon_pvalue is None and "0.0625" in five.wilcoxon_note
    # zero differences do not count towards Wilcoxon's n
    with_zeros = stats.paired_comparison([1, 2, 3, 4, 5, 6], [1, 2, 0, 0, 0, 0])
    assert with_zeros.wilcoxon_pvalue is None and "2 zero differences" in with_zeros.wilcoxon_note
    constant = stats.paired_comparison([1.0, 2.0, 3.0], [0.5, 1.5, 2.5])
    assert constant.t_pvalue is None and "zero variance" in constant.t_note
    assert constant.ci == (0.5, 0.5)
    with pytest.raises(ValueError, match="paired"):
        stats.paired_comparison([1, 2], [1, 2, 3])


def test_bootstrap_ci_matches_a_hand_written_percentile_bootstrap() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(0.02, 0.05, size=40)
    low, high = stats.bootstrap_ci(values, n_resamples=20_000, seed=1)
    # independent reference: resample indices with numpy, take the 2.5 / 97.5 percentiles
    reference_rng = np.random.default_rng(99)
    means = values[reference_rng.integers(0, values.size, size=(20_000, values.size))].mean(1)
    ref_low, ref_high = np.percentile(means, [2.5, 97.5])
    se = values.std(ddof=1) / math.sqrt(values.size)
    assert low == pytest.approx(ref_low, abs=0.1 * se)
    assert high == pytest.approx(ref_high, abs=0.1 * se)
    # and, for 40 normal values, close to the normal-theory interval mean +- 1.96 se
    assert low == pytest.approx(values.mean() - 1.96 * se, abs=0.2 * se)
    # seeded: the same seed gives the same interval, a wider level a wider interval
    assert stats.bootstrap_ci(values, n_resamples=20_000, seed=1) == (low, high)
    wide = stats.bootstrap_ci(values, n_resamples=20_000, seed=1, confidence=0.99)
    assert wide[0] < low and wide[1] > high
    assert stats.bootstrap_ci([0.1]) is None
    with pytest.raises(ValueError, match="confidence"):
        stats.bootstrap_ci(values, confidence=1.5)


def test_bootstrap_ci_of_three_values_stays_within_their_range() -> None:
    low, high = stats.bootstrap_ci([0.1, 0.2, 0.6], seed=0)
    # resampled means of 3 values lie in [min, max]; the extremes have probability 1/27 each
    assert 0.1 <= low < high <= 0.6
    assert low == pytest.approx(0.1, abs=1e-12)
    assert high == pytest.approx(0.6, abs=1e-12)


def test_epochs_to_reach_interpolates_linearly() -> None:
    durations, values = [1, 2, 5, 10], [0.20, 0.30, 0.36, 0.40]
    # 0.33 lies half way between 0.30 (2 epochs) and 0.36 (5 epochs): 2 + 0.5 * 3
    reach = stats.epochs_to_reach(durations, values, 0.33)
    assert reach.status == "interpolated" and reach.duration == pytest.approx(3.5)
    assert stats.epochs_to_reach(durations, values, 0.30).duration == pytest.approx(2.0)
    first = stats.epochs_to_reach(durations, values, 0.15)
    assert first.status == "first" and first.duration == 1.0 and first.format() == "≤ 1"
    never = stats.epochs_to_reach(durations, values, 0.5)
    assert never.status == "never" and never.duration is None and never.format() == "never"
    # losses: lower is better
    loss = stats.epochs_to_reach([1, 2, 5], [3.0, 2.0, 1.0], 1.5, higher_is_better=False)
    assert loss.duration == pytest.approx(3.5)
    # a curve that dips and recovers: the first crossing counts
    dip = stats.epochs_to_reach([1, 2, 3, 4], [0.1, 0.4, 0.2, 0.5], 0.3)
    assert dip.duration == pytest.approx(1 + 2 / 3)
    with pytest.raises(ValueError, match="increasing"):
        stats.epochs_to_reach([2, 1], [0.1, 0.2], 0.15)
