"""Perplexity calibration: the per-row width of a Gaussian neighbourhood (SNE / t-SNE).

For squared distances ``d_ij`` and a target perplexity ``P``, each row gets

    log p(j|i) = -beta_i d_ij - log sum_k exp(-beta_i d_ik),   exp(H(p(.|i))) = P,

with ``beta_i = 1 / (2 sigma_i^2)`` found by bisection on ``log beta`` for all rows at once
(the entropy ``H`` decreases monotonically in ``beta``), in float64. The input kernel
:class:`rkdo.kernels.GaussianInput` and the estimators' affinities build on it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rkdo.functional import log_normalize

__all__ = ["calibrate_gaussian"]


def calibrate_gaussian(
    sq_distances: Tensor,
    perplexity: float,
    mask: Tensor | None = None,
    *,
    iterations: int = 100,
) -> Tensor:
    """Per-row log-probabilities ``log p(j|i) ∝ -beta_i d_ij`` with ``exp(H_i) = perplexity``.

    ``beta_i = 1 / (2 sigma_i^2)`` is found by bisection on ``log beta`` for all rows at once
    (entropy decreases monotonically in ``beta``). Distances are shifted by the row minimum,
    which changes nothing after normalisation but keeps ``exp`` in range.
    """
    d = sq_distances.to(torch.float64)
    if mask is not None:
        d = d.masked_fill(~mask, float("inf"))
    d = d - d.amin(dim=-1, keepdim=True)
    finite = d.masked_fill(torch.isinf(d), 0.0)  # once: the loop below runs 100 times
    target = math.log(perplexity)
    low = torch.full(d.shape[:1], -50.0, dtype=torch.float64, device=d.device)
    high = torch.full_like(low, 50.0)
    scale = finite.amax(dim=-1).clamp_min(1e-12)
    # search beta * scale, so the bracket does not depend on the data's units
    for _ in range(iterations):
        mid = 0.5 * (low + high)
        log_p = log_normalize(-(mid.exp() / scale)[:, None] * finite, mask)
        entropy = -(log_p.exp() * log_p.masked_fill(torch.isneginf(log_p), 0.0)).sum(-1)
        too_flat = entropy > target
        low = torch.where(too_flat, mid, low)
        high = torch.where(too_flat, high, mid)
    beta = (0.5 * (low + high)).exp() / scale
    return log_normalize(-beta[:, None] * finite, mask)
