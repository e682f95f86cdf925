"""Fused KL terms of I-Con and RKDO from log-probabilities: one custom autograd step each,
backward in closed form.

:func:`fixed_mean_kl` and :func:`fused_recursive_kl` (the log-probability path; the path from a
softmax kernel's scores is :mod:`rkdo.fused_scores`, its streaming form :mod:`rkdo.streaming`)
take log-probabilities ``(..., N)`` (``-inf`` for impossible entries) and return
the same numbers as the log-space formulas of :mod:`rkdo.functional`, in fewer passes over the
``(B, N)`` matrices and with no host syncs.

**Fixed teacher** (I-Con): with ``p`` constant and the student's log-probabilities ``l``,

    L = 1/n sum_ij p_ij (log p_ij - l_ij),      dL/dl_ij = -p_ij / n,

where ``n`` counts the rows of ``p`` with mass. Chained through ``l = log_softmax(s)`` this is
the familiar ``dL/ds = (q - p) / n``.

**Recursive teacher** (RKDO, depth ``K``): ``q_u = exp(l_u)``, ``p_t = (1 - a) p_{t-1} + a q_{t-1}``
(mixed in probability space: every term is >= 0, so the sum keeps full relative precision),

    L = sum_{t=1}^{K} w_t sum_ij p_t,ij D_t,ij,     D_t = log p_t - l_t,   w_t = 1 / n_t.

Backward. ``dL/dl_t`` has a direct part ``-w_t p_t`` (``l_t`` is the student of term ``t``) and,
through the teacher, ``dKL_t/dp_t = D_t + 1`` and ``dp_t/dl_u = a (1 - a)^(t-1-u) q_u`` for
``u < t``. Collecting the terms that reach ``l_u``:

    dL/dl_u = q_u * R_u - w_u p_u [u >= 1],     R_u = a sum_{t>u} (1 - a)^(t-1-u) w_t (D_t + 1),

and ``R`` obeys ``R_{K-1} = a w_K (D_K + 1)``, ``R_{u-1} = (1 - a) R_u + a w_u (D_u + 1)``: one
``lerp`` per step, from the last term down. With ``detach_teacher`` the ``q_u * R_u`` part is
dropped. (The ``+1`` only adds a multiple of ``q_u`` to row ``u``, which the softmax of any
learned kernel removes; it is kept so the gradient is exact for any input.)

The ``0 log 0 = 0`` convention: ``D`` is taken as ``nan_to_num(log p - l)``. Where ``p = 0`` and
the student is masked both logs are ``-inf`` and ``D = 0``; where only ``p = 0``, ``D`` is a huge
negative finite number that meets only zeros (``p_t = 0`` forces ``q_u = 0`` for ``u < t``). A
teacher with mass where the student has none (an infinite KL) gives a huge finite value.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["fixed_mean_kl", "fused_recursive_kl", "probabilities"]


def probabilities(log_p: Tensor, out: Tensor | None = None) -> Tensor:
    """``exp(log_p)`` for a distribution without gradient, with ``p <= e^2 tiny`` set to 0.

    On CPU ``exp`` takes a slow path (10-70x) wherever its result underflows, ``-inf``
    included, and supervisory targets are mostly ``-inf``: exponentiate ``max(log p, floor)``
    and subtract ``e^floor``. Entries at or below it (< 1e-37 in float32, 1e-307 in float64)
    become exactly 0; the others move by ``e^floor``, lost beside any mass of their row.
    """
    floor = torch.tensor(math.log(torch.finfo(log_p.dtype).tiny) + 2.0, dtype=log_p.dtype)
    clamped = log_p.clamp_min(floor) if out is None else torch.clamp_min(log_p, floor, out=out)
    return clamped.exp_().sub_(floor.exp()).clamp_min_(0.0)


def _log_ratio(log_p: Tensor, log_q: Tensor, out: Tensor | None = None) -> Tensor:
    """``log p - log q`` with ``-inf - -inf = 0`` and infinities clamped to +-sqrt(max)."""
    big = math.sqrt(torch.finfo(log_q.dtype).max)
    ratio = torch.sub(log_p, log_q) if out is None else torch.sub(log_p, log_q, out=out)
    return ratio.nan_to_num_(nan=0.0, posinf=big, neginf=-big)


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return torch.dot(a.reshape(-1), b.reshape(-1))


def _rows_with_mass(p: Tensor) -> Tensor:
    """``1 / n`` for the ``n`` rows of ``p`` that carry mass (at least 1), a 0-dim tensor."""
    return (p.sum(dim=-1) > 0).sum().clamp_min(1).to(p.dtype).reciprocal()


class _FixedKL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, log_p: Tensor, log_q: Tensor) -> Tensor:
        with torch.autocast(device_type=log_q.device.type, enabled=False):
            p = probabilities(log_p.to(log_q.dtype))
            weight = _rows_with_mass(p)
            value = _dot(p, _log_ratio(log_p, log_q)) * weight
        ctx.save_for_backward(p, weight)
        return value

    @staticmethod
    def backward(ctx, grad: Tensor):
        p, weight = ctx.saved_tensors
        return None, p * (-grad * weight)


def fixed_mean_kl(log_p: Tensor, log_q: Tensor) -> Tensor:
    """``1/n sum_i KL(p(.|i) || q(.|i))`` for a teacher ``p`` that gets no gradient.

    ``log_p`` and ``log_q`` have one shape; ``n`` counts the rows where ``p`` has mass.
    """
    if log_p.shape != log_q.shape:
        raise ValueError(f"p and q must have one shape, got {tuple(log_p.shape)} and "
                         f"{tuple(log_q.shape)}")
    return _FixedKL.apply(log_p.detach(), log_q)


class _RecursiveKL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, log_teacher: Tensor, alpha: float, detach: bool, *students: Tensor):
        through = alpha > 0.0 and not detach
        with torch.autocast(device_type=students[0].device.type, enabled=False):
            teacher = log_teacher.to(students[0].dtype)
            p = probabilities(teacher)
            dots, masses, saved = [], [], []  # saved per term t: q(t-1), p(t), D(t) + 1
            for t in range(1, len(students)):
                if alpha > 0.0:
                    previous = students[t - 1].exp()
                    p = torch.lerp(p, previous, alpha)
                    log_p = p.log()
                    ratio = _log_ratio(log_p, students[t], out=log_p)
                else:
                    previous, ratio = p, _log_ratio(teacher, students[t])
                dots.append(_dot(p, ratio))
                masses.append(p.sum(dim=-1))
                saved += [previous, p, ratio.add_(1.0) if through else ratio]
            # w_t = 1 / n_t for every term at once: few tiny ops, no host sync
            weights = (torch.stack(masses) > 0).sum(-1).clamp_min(1).to(p.dtype).reciprocal()
            total = torch.dot(torch.stack(dots), weights)
        ctx.alpha, ctx.through = alpha, through
        ctx.save_for_backward(weights, *saved)
        return total

    @staticmethod
    def backward(ctx, grad: Tensor):
        weights, *saved = ctx.saved_tensors
        alpha, depth = ctx.alpha, len(saved) // 3
        qs, ps, ratios = saved[0::3], saved[1::3], saved[2::3]
        scales = (grad * weights).unbind()  # upstream gradient times w_t, for t = 1..K
        grads: list[Tensor | None] = [None] * (depth + 1)
        grads[depth] = ps[-1] * -scales[-1]
        carry: Tensor | None = None  # R_u
        for u in range(depth - 1, -1, -1):
            if ctx.through:
                # w_{u+1} (D_{u+1} + 1) joins R with weight a; older terms decay by (1 - a)
                term = ratios[u] * scales[u]
                carry = term.mul_(alpha) if carry is None else carry.lerp_(term, alpha)
                grad_u = qs[u] * carry
                if u >= 1:
                    grad_u.addcmul_(ps[u - 1], scales[u - 1], value=-1.0)
            else:
                grad_u = ps[u - 1] * -scales[u - 1] if u >= 1 else None
            grads[u] = grad_u
        return (None, None, None, *grads)


def fused_recursive_kl(
    log_teacher: Tensor, log_students: list[Tensor], alpha: float, *, detach_teacher: bool = False
) -> Tensor:
    """RKDO's in-step recursion ``sum_{t=1}^{K} 1/n_t sum_i KL(p(t)(.|i) || q(t)(.|i))``.

    ``log_teacher`` is ``log p(0)`` and gets no gradient; ``log_students`` are ``log q(0..K)``,
    one shape, ``K >= 1``; ``alpha`` in [0, 1]. Gradients flow through the teacher's mixture
    unless ``detach_teacher`` (see the module docstring for the backward pass).
    """
    shapes = {tuple(s.shape) for s in log_students} | {tuple(log_teacher.shape)}
    if len(shapes) != 1:
        raise ValueError(f"teacher and students must have one shape, got {sorted(shapes)}")
    return _RecursiveKL.apply(log_teacher.detach(), float(alpha), bool(detach_teacher),
                              *log_students)
