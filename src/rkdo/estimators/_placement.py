"""Placing new points into a fixed embedding (openTSNE's ``prepare_partial`` + ``optimize``).

Each new point ``i`` is optimised alone against the fixed reference embedding ``r``:

    L_i = KL(p(.|i) || q(.|i)),   q(j|i) = w(y_i - r_j) / sum_k w(y_i - r_k),

with ``p(.|i)`` the new point's affinities to the reference points (``Affinity.to_new``) and the
Student-t ``w(d) = (1 + |d|^2 / nu)^(-(nu + 1) / 2)``. Its gradient is

    dL_i / dy_i = (nu + 1) / nu * sum_j (e p_ij - q_ij) b_ij (y_i - r_j),   b = (1 + |d|^2 / nu)^-1,

with the attraction exaggerated by ``e`` (openTSNE's 1.5). The new points do not interact, so
placing them one at a time or together gives the same result; the repulsion is summed over all
reference points in blocks, ``O(m n)`` per step. The descent is the estimator's (gains,
momentum) with openTSNE's ``transform`` defaults: learning rate 0.1, momentum 0.8, 250 steps,
per-point gradients clipped to norm 0.25 and steps to norm 5. Start: the median position of each
point's reference neighbours (those with ``p_ij > 0``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

__all__ = ["median_start", "place"]

_BLOCK_ELEMENTS = 1 << 22


def median_start(reference: np.ndarray, affinities: sp.csr_matrix) -> np.ndarray:
    """``(m, d)``: per new point, the coordinate-wise median of its neighbours' positions."""
    affinities = sp.csr_matrix(affinities)
    counts = np.diff(affinities.indptr)
    start = np.empty((affinities.shape[0], reference.shape[1]))
    for width in np.unique(counts):  # rows of equal width at once: no per-point loop
        rows = np.flatnonzero(counts == width)
        cols = affinities.indices[affinities.indptr[rows][:, None] + np.arange(width)]
        start[rows] = np.median(reference[cols], axis=1)
    return start


def _clip_rows(values: Tensor, limit: float | None) -> Tensor:
    if limit is None:
        return values
    norms = values.norm(dim=1, keepdim=True)
    return values * (limit / norms.clamp_min(limit))


def _gradient(y: Tensor, reference: Tensor, rows: Tensor, cols: Tensor, p: Tensor,
              dof: float, exaggeration: float) -> Tensor:
    diff = y[rows] - reference[cols]
    base = (1.0 + diff.square().sum(-1) / dof).reciprocal()
    grad = torch.zeros_like(y).index_add_(0, rows, (exaggeration * p * base)[:, None] * diff)
    block = max(1, _BLOCK_ELEMENTS // max(reference.shape[0], 1))
    for start in range(0, y.shape[0], block):
        chunk = y[start:start + block]
        offsets = chunk[:, None, :] - reference[None, :, :]
        base_all = (1.0 + offsets.square().sum(-1) / dof).reciprocal()
        log_w = 0.5 * (dof + 1.0) * torch.log(base_all)
        q = torch.softmax(log_w, dim=1)
        grad[start:start + block] -= ((q * base_all)[:, :, None] * offsets).sum(1)
    return (dof + 1.0) / dof * grad


def place(reference: np.ndarray, affinities: sp.csr_matrix, start: np.ndarray, *,
          dof: float = 1.0, n_iter: int = 250, learning_rate: float = 0.1,
          exaggeration: float = 1.5, momentum: float = 0.8, max_grad_norm: float | None = 0.25,
          max_step_norm: float | None = 5.0) -> np.ndarray:
    """Optimise ``start`` ``(m, d)`` against ``reference`` ``(n, d)`` (module docstring)."""
    coo = sp.coo_matrix(affinities)
    rows, cols = torch.from_numpy(coo.row.astype(np.int64)), torch.from_numpy(
        coo.col.astype(np.int64))
    p = torch.from_numpy(coo.data.astype(np.float64))
    ref = torch.from_numpy(np.asarray(reference, dtype=np.float64))
    y = torch.from_numpy(np.array(start, dtype=np.float64))
    update, gains = torch.zeros_like(y), torch.ones_like(y)
    for _ in range(n_iter):
        grad = _clip_rows(_gradient(y, ref, rows, cols, p, dof, exaggeration), max_grad_norm)
        gains = torch.where((update * grad) >= 0.0, gains * 0.8, gains + 0.2).clamp_min_(0.01)
        update = _clip_rows(momentum * update - learning_rate * gains * grad, max_step_norm)
        y = y + update
    return y.numpy()
