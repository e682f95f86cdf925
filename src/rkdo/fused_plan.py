"""The constants of one call of :func:`rkdo.fused_scores.softmax_recursive_kl`: scalars of the
recursion that depend on the temperatures and ``alpha`` only, made once and cached.

With ``c_u = 1 / tau_u`` (``u = 0..K``) and ``a = alpha``:

**Mixture scales**: ``p_t = kappa_t P_t`` with ``kappa_t = (1-a) kappa_{t-1}`` and
``carry_t = 1``, except where ``kappa`` would fall below ``RESCALE_BELOW = 2^-8``: there the
scale is reset, ``kappa_t = 1`` and ``carry_t = (1-a) kappa_{t-1}`` (so ``P_t <= 2^8`` and
``|log kappa_t| <= 8 ln 2`` at any depth). At ``a = 1``, ``kappa_t = 1`` and ``carry_t = 0``.

**Gradient weights**: ``sum_{u>=1} c_u p_u = gamma p_0 + sum_v delta_v q_v`` with, by Horner
from ``u = K`` down (no ``(1-a)^u``, which underflows at large depth),

    gamma = (1-a) (c_u + gamma),   delta_{u-1} = c_u + (1-a) delta_u,

and the gradient is formed divided by ``scale = -gamma`` unless ``gamma < SCALE_GAMMA_ABOVE =
2^-20`` (then ``scale = 1``). The tensors (``delta``, ``c``, ``(1-a)^t``, ``a / kappa_t``, ...)
are shaped ``(K+1, 1, 1)`` or ``(K, 1, 1)`` to broadcast over a row block.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["Plan", "make_plan", "RESCALE_BELOW", "SCALE_GAMMA_ABOVE"]

RESCALE_BELOW = 2.0 ** -8  # kappa_t below this resets the mixtures' scale (see above)
SCALE_GAMMA_ABOVE = 2.0 ** -20  # the gradient is formed divided by -gamma above this


class Plan(NamedTuple):
    """Per-call constants of :func:`rkdo.fused_scores.softmax_recursive_kl` (module docstring)."""

    c: list[float]  # c_u = 1 / tau_u, u = 0..K
    alpha: float
    through: bool  # gradient through the teacher
    gamma: float  # sum_{u>=1} c_u p_u = gamma p_0 + sum_v delta_v q_v
    scale: float  # the gradient is formed divided by this: -gamma, or 1
    kappa: list[float]  # kappa_t, t = 1..K
    carry: list[float]  # carry_t, t = 1..K (1 unless the scale is reset at t)
    delta_t: Tensor  # delta_u, (K+1, 1, 1)
    direct_t: Tensor  # c_u for u >= 1, 0 for u = 0, (K+1, 1, 1)
    lift_t: Tensor  # a c_u ln 2 for u < K, (K, 1, 1) (the F_t are stored as F_t / ln 2)
    log_kappa: Tensor  # log kappa_t, t = 1..K, (K,)
    keep_t: Tensor  # (1-a)^t, t = 0..K, (K+1, 1, 1)
    fresh_t: Tensor  # 1 - (1-a)^t, (K+1, 1, 1)
    mix_t: Tensor  # a / kappa_t, t = 1..K, (K, 1, 1) (1 at a = 1, unused there)


def make_plan(taus: tuple[float, ...], alpha: float, through: bool, like: Tensor) -> Plan:
    """The plan of ``taus`` (``tau_0..tau_K``), ``alpha`` and ``through`` (gradient through the
    teacher) for scores of ``like``'s dtype and device; made once per configuration."""
    return _cached_plan(taus, alpha, through, like.dtype, like.device)


def _scales(alpha: float, depth: int) -> tuple[list[float], list[float]]:
    """``kappa_t`` and ``carry_t`` for t = 1..K, the scale reset below ``RESCALE_BELOW``."""
    keep, kappa, kappas, carries = 1.0 - alpha, 1.0, [], []
    for _ in range(depth):
        if alpha == 1.0:
            kappa, carry = 1.0, 0.0
        elif kappa * keep < RESCALE_BELOW:
            kappa, carry = 1.0, kappa * keep
        else:
            kappa, carry = kappa * keep, 1.0
        kappas.append(kappa)
        carries.append(carry)
    return kappas, carries


@functools.lru_cache(maxsize=64)
def _cached_plan(taus: tuple[float, ...], alpha: float, through: bool, dtype: torch.dtype,
                 device: torch.device) -> Plan:
    """The plan of one configuration; its small tensors are made once and only read."""
    c, keep = [1.0 / tau for tau in taus], 1.0 - alpha
    depth = len(c) - 1
    gamma, delta = 0.0, [0.0] * (depth + 1)
    for u in range(depth, 0, -1):  # Horner: no keep ** u, which underflows at large depth
        gamma = keep * (c[u] + gamma)
        delta[u - 1] = c[u] + keep * delta[u]
    kappa, carry = _scales(alpha, depth)
    scale = -gamma if gamma >= SCALE_GAMMA_ABOVE else 1.0

    def column(values: list[float]) -> Tensor:
        return torch.tensor(values, dtype=dtype, device=device)[:, None, None]

    keeps = [1.0]
    for _ in range(depth):
        keeps.append(keeps[-1] * keep)
    return Plan(c, alpha, through, gamma, scale, kappa, carry,
                column([alpha * d for d in delta]), column([0.0, *c[1:]]),
                column([alpha * cu * math.log(2.0) for cu in c[:depth]]),
                column([math.log(k) for k in kappa]).view(-1), column(keeps),
                column([1.0 - k for k in keeps]),
                column([alpha / k if alpha < 1.0 else 1.0 for k in kappa]))
