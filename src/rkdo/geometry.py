"""Information geometry of the probability simplex: the Fisher metric and natural gradients.

A categorical distribution ``q`` on ``K`` outcomes lives in the open simplex
``{q : q_k > 0, sum_k q_k = 1}``; its tangent vectors ``u`` satisfy ``sum_k u_k = 0``. In the
ambient (mixture) coordinates the Fisher information metric is

    g_q(u, v) = sum_k u_k v_k / q_k,          i.e.  F_q = diag(1 / q)  on tangent vectors,

and on the tangent space its inverse is the covariance of a one-hot draw from ``q``:

    F_q^-1 = diag(q) - q q^T,                 (diag(q) - q q^T) diag(1/q) u = u  for sum(u) = 0.

``F_q^-1`` is also the Jacobian of ``q = softmax(theta)``, so the *natural-gradient direction*

    d = F_q^-1 (p - q) = q * (p - q) - q * <q, p - q>

is how ``q`` moves when its logits take a step along ``p - q = -grad_theta KL(p || softmax theta)``.
Unlike the Euclidean direction ``p - q`` it shrinks where ``q`` is small: the simplex is "larger"
near its edges in the Fisher metric. ``d`` sums to zero (it is tangent to the simplex).

The kaleidoscope draws these directions inside a *petal*: each anchor's distribution restricted
to its top-3 neighbours and renormalised (:func:`petal_projection`), a point of the 2-simplex,
placed in the plane by barycentric coordinates (:func:`simplex_to_plane`).

All functions take tensors with any leading batch shape ``(..., K)``; numpy arrays are accepted
and converted.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "fisher_metric",
    "inverse_fisher",
    "fisher_inner",
    "natural_direction",
    "top_neighbours",
    "petal_projection",
    "simplex_to_plane",
]


def _as_tensor(x) -> Tensor:
    x = torch.as_tensor(x)
    return x if x.is_floating_point() else x.to(torch.get_default_dtype())


def _check_pair(p: Tensor, q: Tensor) -> None:
    if p.shape != q.shape:
        raise ValueError(
            f"p and q must have the same shape (..., K), got {tuple(p.shape)} and {tuple(q.shape)}"
        )


def fisher_metric(q) -> Tensor:
    """The Fisher metric ``F_q = diag(1 / q)`` in mixture coordinates, shape ``(..., K, K)``.

    It is the metric on tangent vectors (``sum u = 0``); ``q`` must be strictly positive.
    """
    q = _as_tensor(q)
    return torch.diag_embed(q.reciprocal())


def inverse_fisher(q) -> Tensor:
    """``F_q^-1 = diag(q) - q q^T``, shape ``(..., K, K)``: the inverse metric on the simplex."""
    q = _as_tensor(q)
    return torch.diag_embed(q) - q.unsqueeze(-1) * q.unsqueeze(-2)


def fisher_inner(u, v, q) -> Tensor:
    """``g_q(u, v) = sum_k u_k v_k / q_k`` for tangent vectors ``u, v``, shape ``(...)``."""
    u, v, q = _as_tensor(u), _as_tensor(v), _as_tensor(q)
    return (u * v / q).sum(dim=-1)


def natural_direction(p, q) -> Tensor:
    """``F_q^-1 (p - q) = q (p - q) - q <q, p - q>`` without forming the matrix, ``(..., K)``."""
    p, q = _as_tensor(p), _as_tensor(q)
    _check_pair(p, q)
    weighted = q * (p - q)
    return weighted - q * weighted.sum(dim=-1, keepdim=True)


def top_neighbours(weights, k: int = 3, *, exclude_self: bool = True) -> Tensor:
    """Indices ``(N, k)`` of the ``k`` largest entries of each row of an ``(N, N)`` matrix.

    With ``exclude_self`` the diagonal (an anchor is not its own neighbour) is never chosen.
    Ties are broken by the lower index, so the choice is deterministic.
    """
    weights = _as_tensor(weights)
    if weights.dim() != 2 or weights.shape[0] != weights.shape[1]:
        raise ValueError(f"weights must be a square (N, N) matrix, got {tuple(weights.shape)}")
    n = weights.shape[0]
    allowed = n - 1 if exclude_self else n
    if not 1 <= k <= allowed:
        raise ValueError(f"k must lie in [1, {allowed}] for {n} points, got {k!r}")
    if exclude_self:
        weights = weights.masked_fill(torch.eye(n, dtype=torch.bool), float("-inf"))
    # a stable descending sort gives the lower index first among equal weights
    return torch.sort(weights, dim=-1, descending=True, stable=True).indices[:, :k]


def petal_projection(dist, neighbours) -> Tensor:
    """Restrict each row of ``dist`` ``(..., N, N)`` to its ``neighbours`` ``(N, k)``, renormalised.

    ``r(m|i) = dist(j_m|i) / sum_l dist(j_l|i)`` with ``j_m = neighbours[i, m]``: the
    distribution of ``i`` conditioned on its neighbour being one of the ``k`` petal vertices.
    Shape ``(..., N, k)``.
    A row without mass on its neighbours is mapped to the uniform distribution (the centre).
    """
    dist = _as_tensor(dist)
    neighbours = torch.as_tensor(neighbours, dtype=torch.long)
    if dist.dim() < 2 or dist.shape[-2] != neighbours.shape[0]:
        raise ValueError(
            f"dist must be (..., N, N) with N = {neighbours.shape[0]} rows, got {tuple(dist.shape)}"
        )
    index = neighbours.expand(*dist.shape[:-2], *neighbours.shape)
    restricted = torch.gather(dist, -1, index)
    total = restricted.sum(dim=-1, keepdim=True)
    uniform = torch.full_like(restricted, 1.0 / neighbours.shape[1])
    return torch.where(total > 0, restricted / total.clamp_min(torch.finfo(dist.dtype).tiny),
                       uniform)


def simplex_to_plane(weights, vertices) -> Tensor:
    """Barycentric map ``x = sum_m w_m v_m``: ``(..., k)`` weights, ``(..., k, 2)`` vertices.

    Applied to a tangent vector (weights summing to 0) it gives the displacement in the plane.
    """
    weights, vertices = _as_tensor(weights), _as_tensor(vertices).to(_as_tensor(weights).dtype)
    return (weights.unsqueeze(-1) * vertices).sum(dim=-2)
