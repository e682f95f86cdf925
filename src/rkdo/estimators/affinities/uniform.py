"""``Uniform``: ``p(j|i) = 1/k`` on the ``k`` nearest neighbours of ``i`` (openTSNE's
``Uniform``; UMAP's graph without its weights). ``kind = "conditional"``; the joint form
(:func:`~rkdo.estimators.affinities.joint`) has two values, ``1/2nk`` on one-way and ``1/nk`` on
mutual neighbours.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator

from rkdo._validation import check_int
from rkdo.estimators.affinities import _neighbours

__all__ = ["Uniform"]


def _uniform_rows(indices: np.ndarray, n_columns: int) -> sp.csr_matrix:
    m, k = indices.shape
    values = np.full(m * k, 1.0 / k)
    rows = np.repeat(np.arange(m), k)
    return sp.csr_matrix((values, (rows, indices.ravel())), shape=(m, n_columns))


class Uniform(BaseEstimator):
    """Uniform k-NN affinities (module docstring).

    Parameters: ``n_neighbors`` (k), ``metric`` / ``metric_params`` / ``n_jobs`` as in
    :class:`~rkdo.estimators.affinities.PerplexityBased`.
    Attributes: ``P_`` (CSR), ``n_samples_``.
    """

    kind = "conditional"

    def __init__(self, n_neighbors: int = 15, *, metric: str | Callable = "euclidean",
                 metric_params: dict | None = None, n_jobs: int | None = None) -> None:
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.metric_params = metric_params
        self.n_jobs = n_jobs

    def fit(self, X) -> Uniform:
        """The ``k``-NN graph of ``X`` with weights ``1/k``."""
        metric = _neighbours.check_metric(self.metric)
        n = X.shape[0]
        k = min(n - 1, check_int("n_neighbors", self.n_neighbors, low=1))
        self.scale_ = _neighbours.unit_scale(X, metric)
        self._reference = X * self.scale_ if self.scale_ != 1.0 else X
        indices, _ = _neighbours.nearest(self._reference, k, metric, self.metric_params,
                                         self.n_jobs)
        self.P_ = _uniform_rows(indices, n)
        self.n_samples_ = n
        return self

    def to_new(self, X) -> sp.csr_matrix:
        """``(m, n)``: ``1/k`` on each new point's ``k`` nearest fitted points."""
        k = min(self.n_samples_, int(self.n_neighbors))
        x = X * self.scale_ if self.scale_ != 1.0 else X
        indices, _ = _neighbours.nearest_in(self._reference, x, k, self.metric,
                                            self.metric_params, self.n_jobs)
        return _uniform_rows(indices, self.n_samples_)
