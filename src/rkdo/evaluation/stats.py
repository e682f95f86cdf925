"""Statistics for benchmark cells: summaries over seeds, paired tests, bootstrap CIs, crossings.

For one cell (dataset, method, duration) with per-seed values ``x_s``, and two methods ``a``, ``b``
paired by seed (``d_s = a_s - b_s``, ``s = 1..n``):

    mean +- std          x_bar = 1/n sum_s x_s,   std = sqrt(1/(n-1) sum_s (x_s - x_bar)^2)
    paired t-test        t = d_bar / (std(d) / sqrt(n)),  df = n - 1   (scipy.stats.ttest_rel)
    Wilcoxon signed-rank W+ = sum of the ranks of |d_s| with d_s > 0   (scipy.stats.wilcoxon)
    bootstrap CI         percentile interval of the mean of n values resampled from d with
                         replacement (scipy.stats.bootstrap, seeded)
    time to reach        the first duration at which the piecewise-linear curve through
                         (duration_k, value_k) reaches a target

A test that cannot mean anything is not run: the t-test needs n >= 3 (with n = 2 it has one degree
of freedom and its p-value is driven by a single difference), and the two-sided Wilcoxon test
cannot reach p < 0.05 below n = 6 (its smallest exact p-value is 2 / 2^n: 0.0625 at n = 5). Such
results carry ``p = None`` and a note that says why.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rkdo._validation import check_int, check_unit_interval

__all__ = [
    "MIN_N_TTEST",
    "MIN_N_WILCOXON",
    "Summary",
    "PairedComparison",
    "Reach",
    "summarize",
    "bootstrap_ci",
    "paired_comparison",
    "min_wilcoxon_pvalue",
    "epochs_to_reach",
]

MIN_N_TTEST = 3
MIN_N_WILCOXON = 6


def _as_array(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-d sequence of numbers, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must hold finite numbers, got {array.tolist()}")
    return array


@dataclass(frozen=True)
class Summary:
    """Mean and sample standard deviation (``ddof=1``; NaN when ``n < 2``) of ``n`` values."""

    n: int
    mean: float
    std: float

    def format(self, digits: int = 4) -> str:
        """``"0.1234 +- 0.0056"`` (``"0.1234"`` when ``n < 2``, ``"--"`` when ``n = 0``)."""
        if self.n == 0:
            return "--"
        if self.n < 2:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"


def summarize(values: Sequence[float] | np.ndarray) -> Summary:
    """Mean +- sample std of ``values`` (an empty input gives ``n = 0`` and NaNs)."""
    array = _as_array(values, "values")
    if array.size == 0:
        return Summary(0, math.nan, math.nan)
    std = float(np.std(array, ddof=1)) if array.size > 1 else math.nan
    return Summary(int(array.size), float(np.mean(array)), std)


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile bootstrap confidence interval of the mean of ``values`` (None when n < 2).

    Seeded: the same values and ``seed`` always give the same interval. With n values there are
    only ``C(2n-1, n)`` distinct resamples (10 at n = 3), so a small-n interval is coarse; it is
    reported with its n.
    """
    from scipy.stats import bootstrap

    confidence = check_unit_interval("confidence", confidence, low_open=True, high_open=True)
    n_resamples = check_int("n_resamples", n_resamples, low=1)
    array = _as_array(values, "values")
    if array.size < 2:
        return None
    if np.all(array == array[0]):
        return float(array[0]), float(array[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = bootstrap(
            (array,), np.mean, n_resamples=n_resamples, confidence_level=confidence,
            method="percentile", vectorized=True, rng=np.random.default_rng(seed),
        )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def min_wilcoxon_pvalue(n: int) -> float:
    """The smallest two-sided exact p-value the Wilcoxon signed-rank test can give at ``n``."""
    n = check_int("n", n, low=1)
    return min(1.0, 2.0 / 2.0**n)


@dataclass(frozen=True)
class PairedComparison:
    """``a`` vs ``b`` paired by seed: differences ``a - b``, their CI and two tests.

    ``t_pvalue`` / ``wilcoxon_pvalue`` are None when n is too small for the test to mean
    anything; ``t_note`` / ``wilcoxon_note`` then say why.
    """

    n: int
    mean_a: float
    mean_b: float
    mean_diff: float
    std_diff: float
    ci: tuple[float, float] | None
    confidence: float
    t_statistic: float | None
    t_pvalue: float | None
    t_note: str
    wilcoxon_statistic: float | None
    wilcoxon_pvalue: float | None
    wilcoxon_note: str

    @property
    def ci_excludes_zero(self) -> bool:
        """True when the bootstrap interval lies entirely on one side of zero."""
        return self.ci is not None and (self.ci[0] > 0.0 or self.ci[1] < 0.0)


def _paired_t(a: np.ndarray, b: np.ndarray,
              diff: np.ndarray) -> tuple[float | None, float | None, str]:
    """``(t statistic, two-sided p, note)`` of the paired t-test; None and why when undefined."""
    from scipy.stats import ttest_rel

    n = int(diff.size)
    if n < MIN_N_TTEST:
        return None, None, f"n too small (n={n} < {MIN_N_TTEST})"
    if np.all(diff == diff[0]):
        return None, None, "differences are all equal (zero variance): t undefined"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = ttest_rel(a, b)
    return float(result.statistic), float(result.pvalue), ""


def _wilcoxon(a: np.ndarray, b: np.ndarray,
              diff: np.ndarray) -> tuple[float | None, float | None, str]:
    """``(W statistic, two-sided p, note)`` of the Wilcoxon signed-rank test (zero differences
    dropped); None and why when too few differences are left."""
    from scipy.stats import wilcoxon

    n, nonzero = int(diff.size), int(np.count_nonzero(diff))
    if nonzero < MIN_N_WILCOXON:
        dropped = f", {n - nonzero} zero differences dropped" if nonzero < n else ""
        return None, None, (f"n too small (n={nonzero}{dropped} < {MIN_N_WILCOXON}: two-sided "
                            f"p >= {min_wilcoxon_pvalue(max(nonzero, 1)):.3g})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = wilcoxon(a, b)
    return float(result.statistic), float(result.pvalue), ""


def paired_comparison(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> PairedComparison:
    """Compare ``a`` with ``b`` (same length, paired by position, e.g. by seed)."""
    a_array, b_array = _as_array(a, "a"), _as_array(b, "b")
    if a_array.shape != b_array.shape:
        raise ValueError(
            f"a and b must be paired (same length), got {a_array.size} and {b_array.size}"
        )
    n = int(a_array.size)
    if n == 0:
        raise ValueError("a and b are empty: nothing to compare")
    diff = a_array - b_array
    summary = summarize(diff)

    t_stat, t_p, t_note = _paired_t(a_array, b_array, diff)
    w_stat, w_p, w_note = _wilcoxon(a_array, b_array, diff)
    return PairedComparison(
        n=n,
        mean_a=float(np.mean(a_array)),
        mean_b=float(np.mean(b_array)),
        mean_diff=summary.mean,
        std_diff=summary.std,
        ci=bootstrap_ci(diff, confidence=confidence, n_resamples=n_resamples, seed=seed),
        confidence=confidence,
        t_statistic=t_stat,
        t_pvalue=t_p,
        t_note=t_note,
        wilcoxon_statistic=w_stat,
        wilcoxon_pvalue=w_p,
        wilcoxon_note=w_note,
    )


@dataclass(frozen=True)
class Reach:
    """When a curve first reaches a target.

    ``duration`` is the interpolated duration; ``status`` is ``"interpolated"`` (crossed between
    two measured durations), ``"first"`` (already reached at the first measured duration, so the
    true crossing is at or before it) or ``"never"`` (``duration`` is None).
    """

    duration: float | None
    status: str

    def format(self, digits: int = 2) -> str:
        if self.status == "never":
            return "never"
        prefix = "≤ " if self.status == "first" else ""
        return f"{prefix}{self.duration:.{digits}g}"


def epochs_to_reach(
    durations: Sequence[float],
    values: Sequence[float],
    target: float,
    *,
    higher_is_better: bool = True,
) -> Reach:
    """First duration at which the linear interpolation of ``(durations, values)`` reaches
    ``target`` (``>=`` target, or ``<=`` when ``higher_is_better=False``).

    ``durations`` must be strictly increasing. Between two measured points the curve is the
    straight line through them, so a crossing between ``(d0, v0)`` and ``(d1, v1)`` is at
    ``d0 + (target - v0) / (v1 - v0) * (d1 - d0)``.
    """
    d = _as_array(durations, "durations")
    v = _as_array(values, "values")
    if d.shape != v.shape or d.size == 0:
        raise ValueError(
            f"durations and values must be non-empty and of equal length, got {d.size} and "
            f"{v.size}"
        )
    if np.any(np.diff(d) <= 0):
        raise ValueError(f"durations must be strictly increasing, got {d.tolist()}")
    sign = 1.0 if higher_is_better else -1.0
    gap = sign * (v - target)  # >= 0 where the target is reached
    if gap[0] >= 0:
        return Reach(float(d[0]), "first")
    for k in range(1, d.size):
        if gap[k] >= 0:
            fraction = (target - v[k - 1]) / (v[k] - v[k - 1])
            return Reach(float(d[k - 1] + fraction * (d[k] - d[k - 1])), "interpolated")
    return Reach(None, "never")
