"""t-SNE's attractive forces over the k-NN edges in one fused pass (numba, CPU).

With the joint ``P`` stored once per unordered pair ``(i, j)``, ``i < j``, and the Student-t
kernel ``w_ij = b_ij^((nu + 1) / 2)``, ``b_ij = 1 / (1 + |y_i - y_j|^2 / nu)``, the attraction and
the cross-entropy term of the KL are

    A_i = e sum_j P_ij b_ij (y_i - y_j),        C = sum_{i < j} P_ij log w_ij

(``e`` the exaggeration; ``A_j`` gets the opposite of each pair's term). Written with torch ops
this is eight passes over ``E`` edges (two gathers, the kernel, two scatters); here it is one
loop over the edges sorted by ``i`` that keeps ``y_i`` and ``A_i`` in registers and adds ``A_j``
in place: about 5x faster at Fashion-MNIST's 4.4 million edges. ``C`` is a second loop, run only
when asked for: its logarithm per edge costs twice the forces (Fashion-MNIST 70k, 4.5 million
edges, one thread: 20 ms for ``A``, 42 ms for ``C``), and the optimiser needs the KL only every
50 steps. One thread; the result does not depend on the thread count.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["attraction"]


@numba.njit(cache=True, fastmath=True)
def _forces(y, starts, cols, values, dof, exaggeration, out):  # pragma: no cover
    for i in range(starts.shape[0] - 1):
        yi0 = y[i, 0]
        yi1 = y[i, 1]
        a0 = 0.0
        a1 = 0.0
        for e in range(starts[i], starts[i + 1]):
            j = cols[e]
            d0 = yi0 - y[j, 0]
            d1 = yi1 - y[j, 1]
            base = 1.0 / (1.0 + (d0 * d0 + d1 * d1) / dof)
            f = exaggeration * values[e] * base
            a0 += f * d0
            a1 += f * d1
            out[j, 0] -= f * d0
            out[j, 1] -= f * d1
        out[i, 0] += a0
        out[i, 1] += a1


@numba.njit(cache=True, fastmath=True)
def _cross(y, starts, cols, values, dof):  # pragma: no cover
    cross = 0.0
    for i in range(starts.shape[0] - 1):
        yi0 = y[i, 0]
        yi1 = y[i, 1]
        for e in range(starts[i], starts[i + 1]):
            j = cols[e]
            d0 = yi0 - y[j, 0]
            d1 = yi1 - y[j, 1]
            base = 1.0 / (1.0 + (d0 * d0 + d1 * d1) / dof)
            cross += values[e] * np.log(base)
    return 0.5 * (dof + 1.0) * cross


def attraction(y: np.ndarray, starts: np.ndarray, cols: np.ndarray, values: np.ndarray,
               dof: float, exaggeration: float, with_cross: bool = True
               ) -> tuple[np.ndarray, float]:
    """``(A (n, 2) in y's dtype, C)``, ``C`` NaN unless ``with_cross``; edges of row ``i`` are
    ``starts[i]:starts[i + 1]``."""
    out = np.zeros_like(y)
    _forces(y, starts, cols, values, float(dof), float(exaggeration), out)
    cross = _cross(y, starts, cols, values, float(dof)) if with_cross else math.nan
    return out, float(cross)
