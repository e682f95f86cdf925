"""Which cost each objective of :class:`~rkdo.estimators.NeighbourEmbedding` minimises.

From a fitted affinity's ``p`` (of its ``kind``) and the solver:

    t-SNE, exact:  DenseCost(log P, Student-t(nu), joint),  P = (p(j|i) + p(i|j)) / 2n
    t-SNE, fft:    SparseCost over P's upper-triangle edges, Student-t(nu), in float32
    SNE:           DenseCost(log p(.|i), Gaussian(1), conditional)
    InfoNCE:       DenseCost(log P(.|i), Student-t(nu), conditional),  P(.|i) the rows of the
                   joint P renormalised

The dense costs compute in float64. :func:`edges` also feeds the sampled solver.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from rkdo.estimators._affinity import SparseJoint
from rkdo.estimators._gradients import Cost, DenseCost, SparseCost
from rkdo.estimators.affinities import Affinity, conditional, joint
from rkdo.kernels import GaussianEmbedding, StudentT

__all__ = ["build_cost", "edges"]


def edges(affinity: Affinity) -> SparseJoint:
    """The joint ``P`` as upper-triangle edges (each unordered pair once)."""
    upper = sp.triu(sp.csr_matrix(joint(affinity.P_, affinity.kind)), k=1).tocoo()
    return SparseJoint(upper.row.astype(np.int64), upper.col.astype(np.int64),
                       upper.data.astype(np.float64), affinity.n_samples_)


def _log_dense(values, device: torch.device) -> Tensor:
    dense = values.toarray() if sp.issparse(values) else np.asarray(values)
    return torch.from_numpy(dense).to(device, torch.float64).log()


def build_cost(objective: str, affinity: Affinity, solver: str, dof: float,
               device: torch.device) -> tuple[Cost, torch.dtype]:
    """The cost of ``objective`` over ``affinity`` (module docstring) and its dtype."""
    matrix, kind = affinity.P_, affinity.kind
    if solver == "fft":
        return SparseCost(edges(affinity), dof, device), torch.float32
    if objective == "tsne":
        log_p = _log_dense(joint(matrix, kind), device)
        return DenseCost(log_p, StudentT(dof), joint=True), torch.float64
    if objective == "sne":
        log_p = _log_dense(conditional(matrix, kind), device)
        return DenseCost(log_p, GaussianEmbedding(1.0), joint=False), torch.float64
    log_p = _log_dense(conditional(joint(matrix, kind), "joint"), device)
    return DenseCost(log_p, StudentT(dof), joint=False), torch.float64
