"""``PerplexityBased``: the perplexity-calibrated Gaussian of SNE and t-SNE.

    p(j|i) = exp(-beta_i d_ij^2) / sum_{k in N(i)} exp(-beta_i d_ik^2),
    exp(H(p(.|i))) = perplexity,

over the ``k`` nearest neighbours ``N(i)`` (``k = min(n - 1, 3 perplexity)`` by default, as
openTSNE and FIt-SNE) or over all other points (``n_neighbors=None``, the exact method's
choice). ``beta_i`` is found by bisection (:func:`rkdo.calibration.calibrate_gaussian`). A
perplexity larger than the ``k`` available neighbours is lowered to ``k / 3`` with a warning,
as openTSNE does; ``effective_perplexity_`` holds the value used.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator

from rkdo._validation import check_int, check_positive
from rkdo.calibration import calibrate_gaussian
from rkdo.estimators._knn import knn_search
from rkdo.estimators._user_warning import warn_user
from rkdo.estimators.affinities import _neighbours

__all__ = ["PerplexityBased", "effective_perplexity"]


def effective_perplexity(perplexity: float, neighbours: int) -> float:
    """``perplexity``, or ``neighbours / 3`` with a warning when it exceeds ``neighbours``."""
    if perplexity <= neighbours:
        return float(perplexity)
    lowered = neighbours / 3.0
    warn_user(f"perplexity {perplexity:g} is too large for {neighbours} neighbours (at most "
              f"n - 1); using perplexity {lowered:.4g} instead")
    return lowered


def _rows_to_csr(indices: np.ndarray, values: np.ndarray, n_columns: int) -> sp.csr_matrix:
    m, k = indices.shape
    rows = np.repeat(np.arange(m), k)
    return sp.csr_matrix((values.ravel(), (rows, indices.ravel())), shape=(m, n_columns))


class PerplexityBased(BaseEstimator):
    """Perplexity-calibrated Gaussian affinities (module docstring); ``kind = "conditional"``.

    Parameters:
        perplexity: effective number of neighbours, > 0.
        metric: a scikit-learn / scipy metric name, a callable on two rows, or
            ``"precomputed"`` (``X`` holds distances: a dense ``(n, n)`` matrix, or a sparse
            k-NN graph whose stored entries in row ``i`` are ``i``'s neighbours).
        metric_params: keyword arguments of the metric.
        n_neighbors: ``"auto"`` (``3 perplexity``), an integer, or ``None`` for all pairs.
        n_jobs: worker count of the neighbour search.
        random_state: seed of an approximate search.

    Attributes: ``P_`` (CSR, or a dense array with ``n_neighbors=None``), ``n_samples_``,
    ``effective_perplexity_``, ``scale_`` (the power of two applied to ``X``).
    """

    kind = "conditional"

    def __init__(self, perplexity: float = 30.0, *, metric: str | Callable = "euclidean",
                 metric_params: dict | None = None, n_neighbors: int | str | None = "auto",
                 n_jobs: int | None = None, random_state: int | None = None) -> None:
        self.perplexity = perplexity
        self.metric = metric
        self.metric_params = metric_params
        self.n_neighbors = n_neighbors
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _neighbour_count(self, n: int) -> int | None:
        if self.n_neighbors is None:
            return None
        if self.n_neighbors == "auto":
            return max(1, min(n - 1, int(3 * self.perplexity)))
        return min(n - 1, check_int("n_neighbors", self.n_neighbors, low=1))

    def fit(self, X) -> PerplexityBased:
        """Calibrate ``p(.|i)`` for every row of ``X`` (data, or distances if precomputed)."""
        check_positive("perplexity", self.perplexity)
        metric = _neighbours.check_metric(self.metric)
        n = X.shape[0]
        if n < 2:
            raise ValueError(f"affinities need at least 2 points, got {n}")
        if metric == "precomputed" and X.shape[1] != n:
            raise ValueError("precomputed distances must be a square (n, n) matrix, got shape "
                             f"{X.shape}")
        self.scale_ = _neighbours.unit_scale(X, metric)
        x = X * self.scale_ if self.scale_ != 1.0 else X
        self._reference = x
        k = self._neighbour_count(n)
        if metric == "precomputed" and sp.issparse(x):
            indices, sq, mask = _neighbours.graph_rows(x)
            available = int(mask.sum(axis=1).min())
            self.effective_perplexity_ = effective_perplexity(self.perplexity, available)
            log_p = calibrate_gaussian(torch.from_numpy(sq), self.effective_perplexity_,
                                       torch.from_numpy(mask))
            self.P_ = _rows_to_csr(indices, log_p.exp().numpy(), n)
        elif k is None:
            self.effective_perplexity_ = effective_perplexity(self.perplexity, n - 1)
            sq = _neighbours.all_pairs(x, metric, self.metric_params, self.n_jobs)
            mask = torch.from_numpy(np.isfinite(sq))
            log_p = calibrate_gaussian(torch.from_numpy(sq), self.effective_perplexity_, mask)
            self.P_ = log_p.exp().numpy()
        else:
            self.effective_perplexity_ = effective_perplexity(self.perplexity, k)
            if metric == "euclidean" and not sp.issparse(x):
                seed = 0 if self.random_state is None else int(self.random_state)
                indices, sq = knn_search(np.asarray(x, dtype=np.float64), k, seed)
            else:
                indices, sq = _neighbours.nearest(x, k, metric, self.metric_params, self.n_jobs)
            log_p = calibrate_gaussian(torch.from_numpy(sq), self.effective_perplexity_)
            self.P_ = _rows_to_csr(indices, log_p.exp().numpy(), n)
        self.n_samples_ = n
        return self

    def to_new(self, X, perplexity: float | None = None) -> sp.csr_matrix:
        """``(m, n)`` ``p(j|new i)`` over the ``3 perplexity`` nearest fitted points
        (``metric="precomputed"``: ``X`` holds the ``(m, n)`` distances to the fitted points)."""
        if not hasattr(self, "P_"):
            raise ValueError("fit the affinity before calling to_new")
        if self.metric == "precomputed" and sp.issparse(self._reference):
            raise ValueError("an affinity fitted on a precomputed k-NN graph cannot place new "
                             "points; fit it on data or dense distances")
        n = self.n_samples_
        perplexity = self.perplexity if perplexity is None else perplexity
        k = max(1, min(n, int(3 * perplexity)))
        perplexity = effective_perplexity(perplexity, k)
        x = X * self.scale_ if self.scale_ != 1.0 else X
        indices, sq = _neighbours.nearest_in(self._reference, x, k, self.metric,
                                             self.metric_params, self.n_jobs)
        log_p = calibrate_gaussian(torch.from_numpy(sq), perplexity)
        return _rows_to_csr(indices, log_p.exp().numpy(), n)
