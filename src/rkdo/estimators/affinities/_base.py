"""The affinity protocol and the two conversions, joint <-> conditional (package docstring)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp

__all__ = ["Affinity", "Matrix", "joint", "conditional", "KINDS"]

Matrix = np.ndarray | sp.csr_matrix
KINDS = ("conditional", "joint")


@runtime_checkable
class Affinity(Protocol):
    """What :class:`~rkdo.estimators.NeighbourEmbedding` needs from an input affinity."""

    kind: str

    def fit(self, X) -> Affinity:
        """Compute ``P_`` (``(n, n)``) and ``n_samples_`` from ``X``; return ``self``."""
        ...

    def to_new(self, X) -> sp.csr_matrix:
        """``(m, n)`` rows ``p(.|new i)`` over the fitted points, each summing to one."""
        ...


def _row_sums(matrix: Matrix) -> np.ndarray:
    return np.asarray(matrix.sum(axis=1), dtype=np.float64).ravel()


def _scale_rows(matrix: Matrix, factors: np.ndarray) -> Matrix:
    if sp.issparse(matrix):
        return sp.csr_matrix(sp.diags(factors) @ matrix)
    return matrix * factors[:, None]


def joint(matrix: Matrix, kind: str) -> Matrix:
    """t-SNE's joint ``P``: ``(p + p^T) / 2n`` of a conditional, a joint symmetrised and
    renormalised to sum to one."""
    n = matrix.shape[0]
    symmetric = matrix + matrix.T
    if sp.issparse(symmetric):
        symmetric = sp.csr_matrix(symmetric)
        symmetric.setdiag(0.0)
        symmetric.eliminate_zeros()
    else:
        np.fill_diagonal(symmetric, 0.0)
    total = 2.0 * n if kind == "conditional" else float(symmetric.sum())
    return symmetric / total


def conditional(matrix: Matrix, kind: str) -> Matrix:
    """Rows that sum to one: a conditional as it is, a joint row-normalised."""
    if kind == "conditional":
        return matrix
    sums = _row_sums(matrix)
    if np.any(sums <= 0.0):
        raise ValueError("every point needs at least one neighbour with a positive affinity; "
                         f"{int(np.sum(sums <= 0.0))} rows of the affinity matrix are empty")
    return _scale_rows(matrix, 1.0 / sums)
