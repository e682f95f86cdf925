"""t-SNE's attractive forces over the k-NN edges in one fused pass (numba, CPU).

With the joint ``P`` stored once per unordered pair ``(i, j)``, ``i < j``, and the Student-t
kernel ``w_ij = b_ij^((nu + 1) / 2)``, ``b_ij = 1 / (1 + |y_i - y_j|^2 / nu)``, the attraction and
the cross-entropy term of the KL are

    A_i = e sum_j P_ij b_ij (y_i - y_j),        C = sum_{i < j} P_ij log w_ij

(``e`` the exaggeration; ``A_j`` gets the opposite of each pair's term). Written with torch ops
this is eight passes over ``E`` edges (two gathers, the kernel, two scatters); here it is one
loop over the edges sorted by ``i`` that keeps ``y_i`` and ``A_i`` in registers and adds ``A_j``
in place: about 5x faster at Fashion-MNIST's 4.4 million edges. One thread; the result does not
depend on the thread count.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["attraction"]


@numba.njit(cache=True, fastmath=True)
def _kernel(y, starts, cols, values, dof, exaggeration, out):  # pragma: no cover
    power = 0.5 * (dof + 1.0)
    cross = 0.0
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
            cross += values[e] * np.log(base)
            f = exaggeration * values[e] * base
            a0 += f * d0
            a1 += f * d1
            out[j, 0] -= f * d0
            out[j, 1] -= f * d1
        out[i, 0] += a0
        out[i, 1] += a1
    return power * cross


def attraction(y: np.ndarray, starts: np.ndarray, cols: np.ndarray, values: np.ndarray,
               dof: float, exaggeration: float) -> tuple[np.ndarray, float]:
    """``(A (n, 2) in y's dtype, C)``; edges of row ``i`` are ``starts[i]:starts[i + 1]``."""
    out = np.zeros_like(y)
    cross = _kernel(y, starts, cols, values, float(dof), float(exaggeration), out)
    return out, float(cross)
