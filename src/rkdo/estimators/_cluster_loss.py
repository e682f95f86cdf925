"""The loss of kernel clustering: I-Con's KL between a walk graph and a clustering kernel.

With ``f(c|i)`` the assignments of the anchors, ``g(c|j)`` those of the target model,
``w`` the sample weights and ``N_c = sum_k w_k g(c|k)``, the clustering kernel is

    q(j|i) = sum_c f(c|i) g(c|j) w_j / N_c,      q'(j|i) = (1 - b) q(j|i) + b / (n - 1),

and, with ``p'(j|i) = (1 - a) p(j|i) + a / (n - 1)`` the debiased walk distribution,

    L = 1/W sum_i w_i sum_j p'(j|i) (-log q'(j|i))      (KL(p' || q') + the entropy of p').

On a minibatch, ``p`` is one walk end per anchor and the uniform part a random other anchor's
walk end; the recursive target (weight ``alpha``) adds a random member of the anchor's current
hard cluster. Everything is in log space (``logsumexp`` / ``logaddexp``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["clustering_loss", "log_q", "same_cluster", "static_objective"]

_OBJECTIVE_DRAWS = 16  # walk ends (and uniform pairs) per point in the final objective
_CHUNK = 65536  # anchors per block of the final objective


def log_q(log_f: Tensor, log_g: Tensor, log_mass: Tensor, debias: float, n: int) -> Tensor:
    """``log q'(j|i)`` for row-aligned anchors ``log f`` and candidates ``log g``, ``(B,)``."""
    log_kernel = torch.logsumexp(log_f + log_g - log_mass, dim=-1)
    if debias == 0.0:
        return log_kernel
    return torch.logaddexp(log_kernel + math.log1p(-debias),
                           torch.full_like(log_kernel, math.log(debias / max(n - 1, 1))))


def clustering_loss(log_f: Tensor, log_g: Tensor, log_mass: Tensor, weight: Tensor, *,
                    debias_p: float, debias_q: float, n: int,
                    shuffle: Tensor | None = None, sharp: Tensor | None = None,
                    alpha: float = 0.0) -> Tensor:
    """Minibatch estimate of ``L`` (module docstring).

    ``log_f``: ``(B, C)`` anchors' log-assignments; ``log_g``: ``(B, C)`` of each anchor's walk
    end; ``log_mass``: ``(C,)`` ``log N_c``; ``weight``: ``(B,)`` anchor weights (mean 1);
    ``shuffle``: a permutation pairing each anchor with another's walk end (the uniform part of
    ``p'``); ``sharp``: ``(B,)`` index of a candidate in the anchor's hard cluster (recursive
    target, weight ``alpha``).
    """
    attract = -log_q(log_f, log_g, log_mass, debias_q, n)
    if debias_p > 0.0 and shuffle is not None:
        spread = -log_q(log_f, log_g[shuffle], log_mass, debias_q, n)
        attract = (1.0 - debias_p) * attract + debias_p * spread
    if sharp is not None and alpha > 0.0:
        attract = (1.0 - alpha) * attract + alpha * -log_q(log_f, log_g[sharp], log_mass,
                                                           debias_q, n)
    return (weight * attract).mean()


def same_cluster(labels: Tensor, n_clusters: int, generator: torch.Generator) -> Tensor:
    """For each row, the index of a random row with the same label (possibly itself)."""
    order = torch.argsort(labels)
    counts = torch.bincount(labels, minlength=n_clusters)
    starts = torch.cumsum(counts, 0) - counts
    draw = torch.rand(labels.shape, generator=generator)
    offset = (draw * counts[labels]).long().clamp_max(counts[labels] - 1)
    return order[starts[labels] + offset]


def static_objective(log_f: Tensor, walk: Callable[[Tensor, torch.Generator], Tensor],
                     weight: Tensor, *, debias_p: float, debias_q: float) -> float:
    """``L`` on all points with ``g = f`` and fixed draws (comparable across restarts):
    ``walk(anchors, generator)`` draws one walk end per anchor."""
    generator = torch.Generator().manual_seed(12345)
    n = log_f.shape[0]
    log_mass = torch.logsumexp(log_f + weight.log()[:, None], dim=0)
    total = 0.0
    for start in range(0, n, _CHUNK):
        anchors = torch.arange(start, min(start + _CHUNK, n)).repeat(_OBJECTIVE_DRAWS)
        ends = walk(anchors, generator)
        attract = -log_q(log_f[anchors], log_f[ends], log_mass, debias_q, n)
        if debias_p > 0.0:
            others = torch.randint(0, n, anchors.shape, generator=generator)
            spread = -log_q(log_f[anchors], log_f[others], log_mass, debias_q, n)
            attract = (1.0 - debias_p) * attract + debias_p * spread
        total += float((weight[anchors] * attract).sum())
    return total / (_OBJECTIVE_DRAWS * float(weight.sum()))
