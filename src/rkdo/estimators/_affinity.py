"""Input affinities of neighbour embedding: conditional and joint perplexity-calibrated Gaussians.

The conditional kernel is the core's (:func:`rkdo.calibration.calibrate_gaussian`),

    p(j|i) = exp(-beta_i |x_i - x_j|^2) / sum_{k != i} exp(-beta_i |x_i - x_k|^2),
    exp(H(p(.|i))) = perplexity,

and t-SNE's joint affinity symmetrises it over all pairs,

    P_ij = (p(j|i) + p(i|j)) / (2 n),        sum_{i != j} P_ij = 1.

``dense`` forms are ``(n, n)`` tensors over all candidates (O(n^2)); the ``sparse`` form keeps
the ``k`` nearest neighbours of each point (k about 3 x perplexity, found by scikit-learn's exact
search, or pynndescent with ``approximate``) and returns the joint ``P`` as the upper triangle
``(rows, cols, values)`` with ``rows < cols``, each unordered pair once.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from rkdo.calibration import calibrate_gaussian
from rkdo.estimators._knn import knn_search

__all__ = [
    "conditional_dense",
    "joint_dense",
    "knn_graph",
    "joint_sparse",
    "SparseJoint",
]


def conditional_dense(x: Tensor, perplexity: float) -> Tensor:
    """``(n, n)`` float64 ``log p(j|i)`` over all ``j != i`` (``-inf`` on the diagonal)."""
    x = x.to(torch.float64)
    sq = torch.cdist(x, x).square()
    mask = ~torch.eye(x.shape[0], dtype=torch.bool, device=x.device)
    return calibrate_gaussian(sq, perplexity, mask)


def joint_dense(x: Tensor, perplexity: float) -> Tensor:
    """``(n, n)`` float64 joint ``P`` of t-SNE (zero diagonal, sums to one)."""
    conditional = conditional_dense(x, perplexity).exp()
    return (conditional + conditional.T) / (2.0 * x.shape[0])


def knn_graph(x: np.ndarray, k: int, random_state: int, *,
              approximate: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(indices, squared distances)``, both ``(n, k)``: see :mod:`rkdo.estimators._knn`."""
    return knn_search(x, k, random_state, method="approximate" if approximate else "exact")


class SparseJoint:
    """t-SNE's joint ``P`` on a k-NN graph: upper-triangle edges ``rows < cols``, ``values``."""

    def __init__(self, rows: np.ndarray, cols: np.ndarray, values: np.ndarray, n: int) -> None:
        self.rows, self.cols, self.values, self.n = rows, cols, values, n

    def entropy_term(self) -> float:
        """``sum_{i != j} P_ij log P_ij`` (each edge counts twice)."""
        values = self.values[self.values > 0.0]
        return float(2.0 * np.sum(values * np.log(values)))


def joint_sparse(x: np.ndarray, perplexity: float, k: int, random_state: int) -> SparseJoint:
    """The sparse joint ``P`` over the ``k``-NN graph (see module docstring)."""
    n = x.shape[0]
    indices, sq = knn_search(x, k, random_state)  # approximate above 100,000 points
    conditional = calibrate_gaussian(torch.from_numpy(sq), perplexity).exp().numpy()
    rows = np.repeat(np.arange(n), k)
    matrix = sp.csr_matrix((conditional.ravel(), (rows, indices.ravel())), shape=(n, n))
    joint = sp.triu(matrix + matrix.T, k=1).tocoo()
    values = joint.data / (2.0 * n)
    return SparseJoint(joint.row.astype(np.int64), joint.col.astype(np.int64), values, n)
