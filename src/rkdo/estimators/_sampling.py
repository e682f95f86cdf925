"""Neighbour embedding by negative sampling: InfoNCE and NEG in O(n k + n m) per epoch.

The contrastive neighbour embeddings of Damrich et al. (ICLR 2023, ``contrastive-ne``) with the
Cauchy kernel ``w_ij = 1 / (1 + |y_i - y_j|^2)``. A positive pair ``(i, j)`` is drawn from the
input affinity ``P`` (the sparse joint of :mod:`rkdo.estimators._affinity`) and ``m`` negatives
``k_1..k_m`` uniformly from all points; per pair the losses are

    InfoNCE:  l = -log( w_ij / (w_ij + sum_a w_{i k_a}) ),
    NEG:      l = -log( w_ij / (w_ij + 1) ) - sum_a log( 1 - w_{i k_a} / (w_{i k_a} + 1) )

(NEG with the normalisation ``Z = 1``: UMAP-like). InfoNCE is the I-Con / t-SNE family's KL with
``m`` negatives instead of all ``n - 1`` points; nothing is O(n^2). With ``d = y_i - y_j`` and
``d_a = y_i - y_{k_a}``, ``S = w_ij + sum_a w_{i k_a}``, the gradients in ``y_i`` are

    InfoNCE:  2 w_ij (1 - w_ij / S) d  -  sum_a 2 w_{i k_a}^2 / S d_a,
    NEG:      2 d / (2 + |d|^2)        -  sum_a 2 w_{i k_a}^2 / (1 + w_{i k_a}) d_a,

and ``y_j`` gets minus the positive term (negatives stay fixed, as in UMAP). Optimisation is
asynchronous SGD in one numba loop (Recht et al.'s Hogwild order, one thread, reproducible for a
seed): each epoch visits every edge in order and processes it, in both directions,
``floor(acc_e)`` times where the accumulator ``acc_e`` gains ``E P_e / sum P`` per epoch (so an
epoch is ``2 E`` directed positive pairs, edge ``e`` drawn in proportion to ``P_e``). The
learning rate decays linearly to 0 and each gradient coordinate is clipped to ``[-4, 4]``
(UMAP's choice). Memory: ``O(E + n)``; time per epoch ``O(E (1 + m))``.
"""

from __future__ import annotations

import numba
import numpy as np

from rkdo._validation import check_choice, check_int, check_positive
from rkdo.estimators._affinity import SparseJoint

__all__ = ["LOSSES", "sampled_embedding"]

LOSSES = ("infonce", "neg")
_CLIP = 4.0


@numba.njit(cache=True, fastmath=True, inline="always")
def _clip(value: float) -> float:
    return min(max(value, -_CLIP), _CLIP)


@numba.njit(cache=True, fastmath=True)
def _gradient(dx, dy, far_x, far_y, infonce):  # pragma: no cover
    """``(pull, gx, gy)``: the positive term's factor and the clipped gradient in ``y_i``."""
    sq = dx * dx + dy * dy
    w = 1.0 / (1.0 + sq)
    far_w = 1.0 / (1.0 + far_x * far_x + far_y * far_y)
    total = w + far_w.sum()
    pull = 2.0 * w * (1.0 - w / total) if infonce else 2.0 / (2.0 + sq)
    gx = _clip(pull * dx)
    gy = _clip(pull * dy)
    for a in range(far_x.shape[0]):
        if infonce:
            push = 2.0 * far_w[a] * far_w[a] / total
        else:
            push = 2.0 * far_w[a] * far_w[a] / (1.0 + far_w[a])
        gx -= _clip(push * far_x[a])
        gy -= _clip(push * far_y[a])
    return pull, gx, gy


@numba.njit(cache=True, fastmath=True)
def _direction(y, i, j, rate, infonce, far_x, far_y):  # pragma: no cover
    """One positive pair ``i -> j`` with ``len(far_x)`` uniform negatives; updates ``y``."""
    n = y.shape[0]
    for a in range(far_x.shape[0]):
        k = np.random.randint(n)
        while k == i:
            k = np.random.randint(n)
        far_x[a] = y[i, 0] - y[k, 0]
        far_y[a] = y[i, 1] - y[k, 1]
    dx = y[i, 0] - y[j, 0]
    dy = y[i, 1] - y[j, 1]
    pull, gx, gy = _gradient(dx, dy, far_x, far_y, infonce)
    y[j, 0] += rate * _clip(pull * dx)
    y[j, 1] += rate * _clip(pull * dy)
    y[i, 0] -= rate * gx
    y[i, 1] -= rate * gy


@numba.njit(cache=True, fastmath=True)
def _optimise(y, rows, cols, per_epoch, epochs, negatives, learning_rate, infonce,
              seed):  # pragma: no cover
    np.random.seed(seed)
    far_x = np.empty(negatives)
    far_y = np.empty(negatives)
    acc = np.zeros(rows.shape[0])
    for epoch in range(epochs):
        rate = learning_rate * (1.0 - epoch / epochs)
        for e in range(rows.shape[0]):
            acc[e] += per_epoch[e]
            while acc[e] >= 1.0:
                acc[e] -= 1.0
                _direction(y, rows[e], cols[e], rate, infonce, far_x, far_y)
                _direction(y, cols[e], rows[e], rate, infonce, far_x, far_y)


def sampled_embedding(affinity: SparseJoint, init: np.ndarray, *, loss: str = "infonce",
                      negatives: int = 5, epochs: int = 200, learning_rate: float = 1.0,
                      pairs_per_point: float = 10.0, seed: int = 0) -> np.ndarray:
    """The 2-D embedding (float64, ``(n, 2)``) from ``init`` (rescaled to standard deviation 1).

    ``affinity`` holds each unordered pair once with ``sum P = 1/2`` (the upper triangle).
    """
    check_choice("loss", loss, LOSSES)
    check_int("negatives", negatives, low=1)
    check_int("epochs", epochs, low=1)
    check_positive("learning_rate", learning_rate)
    if init.ndim != 2 or init.shape != (affinity.n, 2):
        raise ValueError(f"init must have shape ({affinity.n}, 2) for the sampled method, "
                         f"got {init.shape}; negative sampling embeds in 2-D only")
    y = np.array(init, dtype=np.float64)
    y -= y.mean(axis=0)
    y /= max(float(y[:, 0].std()), 1e-12)
    values = affinity.values / affinity.values.sum()  # P_e over the unordered pairs, sums to 1
    per_epoch = values * (0.5 * pairs_per_point * affinity.n)  # n x pairs_per_point directed
    _optimise(y, affinity.rows.astype(np.int64), affinity.cols.astype(np.int64), per_epoch,
              int(epochs), int(negatives), float(learning_rate), loss == "infonce", int(seed))
    return y
