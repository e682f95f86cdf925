"""``PrecomputedAffinities``: an ``(n, n)`` affinity matrix built elsewhere (openTSNE's class).

The matrix is taken as t-SNE's joint ``P`` (``kind = "joint"``): non-negative, symmetrised
``(A + A^T) / 2`` and normalised to sum to one when the objective needs the joint form
(:func:`~rkdo.estimators.affinities.joint`), or row-normalised for a conditional objective.
New points cannot be placed against it (there is nothing to compute their affinities from).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator

__all__ = ["PrecomputedAffinities"]


class PrecomputedAffinities(BaseEstimator):
    """A user's affinity matrix (module docstring); ``fit()`` only checks it.

    Parameters: ``affinities``, a square dense array or sparse matrix with non-negative,
    finite entries and at least one positive entry per row.
    Attributes: ``P_`` (CSR), ``n_samples_``.
    """

    kind = "joint"

    def __init__(self, affinities) -> None:
        self.affinities = affinities

    def fit(self, X=None) -> PrecomputedAffinities:
        """Check and store the matrix (``X`` is ignored; it is here for a uniform API)."""
        matrix = sp.csr_matrix(self.affinities, dtype=np.float64)
        n = matrix.shape[0]
        if matrix.ndim != 2 or matrix.shape[1] != n:
            raise ValueError(f"affinities must be a square (n, n) matrix, got shape "
                             f"{matrix.shape}")
        if not np.all(np.isfinite(matrix.data)) or np.any(matrix.data < 0.0):
            raise ValueError("affinities must be finite and non-negative")
        matrix.setdiag(0.0)
        matrix.eliminate_zeros()
        if np.any(np.diff(matrix.indptr) == 0):
            raise ValueError("every row of the affinity matrix needs a positive entry off the "
                             "diagonal")
        self.P_ = matrix / float(matrix.sum())
        self.n_samples_ = n
        return self

    def to_new(self, X) -> sp.csr_matrix:
        raise ValueError("precomputed affinities cannot place new points: transform needs an "
                         "affinity computed from data (e.g. PerplexityBased)")
