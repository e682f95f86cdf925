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

import torch
from torch import Tensor

__all__ = ["repulsion"]


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
    return torch.fft.rfft2(kernels)


def repulsion(y: Tensor, *, dof: float = 1.0, points: int = 3, min_boxes: int = 50,
              box_width: float = 1.0) -> tuple[Tensor, Tensor]:
    """``(R, Z)``: ``R`` ``(n, 2)`` and the scalar ``Z`` of the module docstring.

    The grid has at least ``min_boxes`` boxes a side, each at most ``box_width`` wide; once the
    embedding spans more than ``min_boxes * box_width`` the box width is fixed, so the kernel's
    spectrum is reused until the grid grows.
    """
    n = y.shape[0]
    low = y.min(dim=0).values
    span = float((y.max(dim=0).values - low).max()) * (1.0 + 1e-6) + 1e-12
    if span > min_boxes * box_width:
        boxes = math.ceil(span / box_width)
        spacing = box_width / points
    else:
        boxes = min_boxes
        spacing = span / (boxes * points)
    m = boxes * points
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
    spectra = _kernel_spectra(m, spacing, float(dof), y.dtype, y.device)
    field = torch.fft.irfft2(torch.fft.rfft2(grid)[None] * spectra, s=(2 * m, 2 * m))
    field = field[:, :m, :m].reshape(3, -1)
    phi = (field[:, flat].reshape(3, n, -1) * weights[None]).sum(-1)  # (3, n)
    z = phi[0].sum() - n
    return phi[1:3].T.contiguous(), z
