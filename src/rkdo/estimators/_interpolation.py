"""t-SNE's repulsion in O(n) per step by polynomial interpolation on a grid and an FFT.

With the Student-t kernel ``w(d) = (1 + |d|^2 / nu)^(-(nu + 1) / 2)`` (``nu = 1``: t-SNE) the
gradient needs, for every point ``i``, two sums over all ``n`` points,

    Z = sum_{i != j} w(y_i - y_j),     R_i = sum_j G(y_i - y_j),   G(d) = d w(d) / (1 + |d|^2 / nu),

both convolutions of unit charges with a translation-invariant kernel (``w`` and the two
components of ``G``; the self-term of ``G`` is zero, that of ``w`` is one). Writing ``R`` through
``G`` rather than as ``y_i sum_j w^2 - sum_j w^2 y_j`` avoids the cancellation that makes the
latter lose accuracy far from the origin.

As in FIt-SNE (Linderman et al., Nature Methods 2019) the plane is cut into square boxes with
``p`` equispaced nodes per box side, so all nodes form one uniform ``m x m`` grid: charges are
spread to the nodes of their box with Lagrange weights ``L_a(y_x) L_b(y_y)``, the grid potentials
``K * charges`` are one 2-D convolution with a Toeplitz kernel (FFT of size ``2m``), and the
potentials are interpolated back with the same weights. Cost: ``O(n p^2 + m^2 log m)``.
The defaults (3 nodes, boxes at most 1 wide, at least 50 a side) are FIt-SNE's and openTSNE's.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.fft
import torch
from torch import Tensor

__all__ = ["EXACT_UP_TO", "max_boxes", "repulsion"]

# below this many points all n^2 pairs cost less than the smallest grid's FFTs
EXACT_UP_TO = 1024


def _lagrange(t: Tensor, points: int) -> Tensor:
    """``(n, points)`` Lagrange basis at local coordinates ``t`` (nodes at ``k + 1/2``)."""
    nodes = torch.arange(points, dtype=t.dtype, device=t.device) + 0.5
    weights = []
    for k in range(points):
        term = torch.ones_like(t)
        for other in range(points):
            if other != k:
                term = term * (t - nodes[other]) / (nodes[k] - nodes[other])
        weights.append(term)
    return torch.stack(weights, dim=-1)


@functools.lru_cache(maxsize=4)
def _kernel_spectra(m: int, spacing: float, dof: float, dtype: torch.dtype,
                    device: torch.device) -> Tensor:
    """FFTs of ``w`` and ``G`` on the grid offsets, laid out circularly on a ``2m`` grid."""
    offsets = torch.arange(2 * m, dtype=dtype, device=device)
    offsets = torch.where(offsets < m, offsets, offsets - 2 * m) * spacing
    dx, dy = offsets[:, None].expand(2 * m, 2 * m), offsets[None, :].expand(2 * m, 2 * m)
    base = (1.0 + (dx.square() + dy.square()) / dof).reciprocal()
    w = base.pow(0.5 * (dof + 1.0))
    kernels = torch.stack([w, dx * w * base, dy * w * base])
    # slot m is offset -m, which no pair of nodes has
    kernels[:, m, :] = 0.0
    kernels[:, :, m] = 0.0
    return _rfft2(kernels)


def _rfft2(x: Tensor) -> Tensor:
    """Real 2-D FFT over the last two axes; on the CPU scipy's, on one thread: at these sizes
    the thread handshakes of torch's cost more than they save on shared cores."""
    if x.device.type == "cpu":
        return torch.from_numpy(scipy.fft.rfft2(x.numpy(), workers=1))
    return torch.fft.rfft2(x)


def _irfft2(x: Tensor, size: int) -> Tensor:
    if x.device.type == "cpu":
        return torch.from_numpy(scipy.fft.irfft2(x.numpy(), s=(size, size), workers=1))
    return torch.fft.irfft2(x, s=(size, size))


def _smooth(k: int) -> int:
    """The smallest ``2^a 3^b 5^c >= k``: FFT sizes with only small prime factors are fast."""
    best = 1 << max(k - 1, 0).bit_length()
    five = 1
    while five < best:
        three = five
        while three < best:
            size = three
            while size < k:
                size *= 2
            best = min(best, size)
            three *= 3
        five *= 5
    return best


def max_boxes(n: int, min_boxes: int = 50) -> int:
    """The grid's cap, ``max(min_boxes, ceil(sqrt(n)))`` boxes a side (``9 n`` nodes or fewer,
    ``p = 3``, once ``n > min_boxes^2``): below ~10,000 points the FFTs, not the points, would set
    the cost of a step (digits: 1,797 points, span ~90, 4x fewer nodes, same kNN accuracy)."""
    return max(min_boxes, math.ceil(math.sqrt(n)))


def _grid(span: float, n: int, points: int, min_boxes: int,
          box_width: float) -> tuple[int, float]:
    """``(boxes, node spacing)`` of the grid that covers ``span`` (see :func:`repulsion`)."""
    if span <= min_boxes * box_width:  # width rounded up to 2^(k/8): spectra reused
        width = 2.0 ** (math.ceil(8.0 * math.log2(span / min_boxes)) / 8.0)
        return min_boxes, min(width, box_width) / points
    cap = max_boxes(n, min_boxes)
    width = box_width
    if span > cap * box_width:  # widen the boxes in steps of 2^(1/4): the spectra stay cached
        width = box_width * 2.0 ** (math.ceil(4.0 * math.log2(span / (cap * box_width))) / 4.0)
    return _smooth(math.ceil(span / width)), width / points


def _exact(y: Tensor, dof: float) -> tuple[Tensor, Tensor]:
    """The two sums over all pairs, ``O(n^2)``: cheaper than any grid for small ``n``."""
    diff = y[:, None, :] - y[None, :, :]  # differences first: no cancellation far out
    base = diff.square().sum(-1).div_(dof).add_(1.0).reciprocal_()
    w = base.pow(0.5 * (dof + 1.0))
    z = w.sum() - y.shape[0]
    return (w.mul_(base)[:, :, None] * diff).sum(1), z


def _numpy_sums(y: np.ndarray, low: np.ndarray, spacing: float, boxes: int, points: int,
                spectra: np.ndarray) -> tuple[np.ndarray, float]:
    """The grid steps of :func:`repulsion` in numpy on one thread (CPU): ``(R, Z)``."""
    n, m = y.shape[0], boxes * points
    scaled = (y - low) / spacing
    box = np.clip(np.floor(scaled / points), 0, boxes - 1)
    local = scaled - box * points
    nodes = np.arange(points) + 0.5
    basis = []
    for axis in range(2):
        terms = np.ones((n, points), dtype=y.dtype)
        for k in range(points):
            for other in range(points):
                if other != k:
                    terms[:, k] *= (local[:, axis] - nodes[other]) / (nodes[k] - nodes[other])
        basis.append(terms)
    weights = (basis[0][:, :, None] * basis[1][:, None, :]).reshape(n, -1)
    start = box.astype(np.int64) * points
    offsets = np.arange(points)
    flat = ((start[:, 0, None] + offsets)[:, :, None] * m
            + (start[:, 1, None] + offsets)[:, None, :]).reshape(n, -1)
    grid = np.zeros((2 * m, 2 * m), dtype=y.dtype)
    grid[:m, :m] = np.bincount(flat.ravel(), weights.ravel(), minlength=m * m).reshape(m, m)
    field = scipy.fft.irfft2(scipy.fft.rfft2(grid, workers=1)[None] * spectra,
                             s=(2 * m, 2 * m), workers=1)
    field = field[:, :m, :m].reshape(3, -1)
    phi = np.einsum("cnk,nk->cn", field[:, flat], weights)
    return np.ascontiguousarray(phi[1:3].T, dtype=y.dtype), float(phi[0].sum(dtype=np.float64)) - n


def repulsion(y: Tensor, *, dof: float = 1.0, points: int = 3, min_boxes: int = 50,
              box_width: float = 1.0) -> tuple[Tensor, Tensor]:
    """``(R, Z)``: ``R`` ``(n, 2)`` and the scalar ``Z`` of the module docstring.

    Up to :data:`EXACT_UP_TO` points the sums are exact (all pairs). Above, the grid has at
    least ``min_boxes`` boxes a side, each at most ``box_width`` wide, until the cap
    :func:`max_boxes` ``B(n) = max(min_boxes, ceil(sqrt(n)))`` is reached; beyond it the
    boxes widen (by factors of ``2^(1/4)``) instead. Box counts are rounded up to
    ``2^a 3^b 5^c`` (at most 11% more) for fast FFTs. One call therefore costs
    ``O(n p^2 + (p B(n))^2 log(p B(n))) = O(n log n)`` time and ``O(n p^2 + p^2 B(n)^2) = O(n)``
    memory whatever the embedding's span; the fixed box width lets the kernel's spectrum be
    reused until the grid grows.
    """
    n = y.shape[0]
    if n <= EXACT_UP_TO:
        return _exact(y, dof)
    if y.device.type == "cpu":  # numpy's reductions: no thread handshake
        values = y.detach().numpy()
        # per coordinate, on a contiguous copy: numpy's axis-0 min of an (n, 2) array took
        # ~3.7 ms at 70,000 points, the copy and the row-wise min ~0.1 ms (same values: exact)
        columns = np.ascontiguousarray(values.T)
        low_values = columns.min(axis=1)
        span = float((columns.max(axis=1) - low_values).max()) * (1.0 + 1e-6) + 1e-12
    else:
        low = y.min(dim=0).values
        span = float((y.max(dim=0).values - low).max()) * (1.0 + 1e-6) + 1e-12
    boxes, spacing = _grid(span, n, points, min_boxes, box_width)
    m = boxes * points
    spectra = _kernel_spectra(m, spacing, float(dof), y.dtype, y.device)
    if y.device.type == "cpu":
        r, z = _numpy_sums(values, low_values, spacing, boxes, points, spectra.numpy())
        return torch.from_numpy(r), torch.tensor(z, dtype=y.dtype)
    scaled = (y - low) / spacing
    box = (scaled / points).floor().clamp_(0, boxes - 1)
    local = scaled - box * points
    lx, ly = _lagrange(local[:, 0], points), _lagrange(local[:, 1], points)
    weights = (lx[:, :, None] * ly[:, None, :]).reshape(n, -1)
    offsets = torch.arange(points, device=y.device)
    node_x = box[:, 0].long()[:, None] * points + offsets
    node_y = box[:, 1].long()[:, None] * points + offsets
    flat = (node_x[:, :, None] * m + node_y[:, None, :]).reshape(-1)

    grid = y.new_zeros(2 * m, 2 * m)
    grid[:m, :m] = y.new_zeros(m * m).index_add_(0, flat, weights.reshape(-1)).reshape(m, m)
    field = _irfft2(_rfft2(grid)[None] * spectra, 2 * m)
    field = field[:, :m, :m].reshape(3, -1)
    phi = (field[:, flat].reshape(3, n, -1) * weights[None]).sum(-1)  # (3, n)
    z = phi[0].sum() - n
    return phi[1:3].T.contiguous(), z
