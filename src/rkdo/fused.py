"""Fused KL terms of I-Con and RKDO: one custom autograd step each, backward in closed form.

Both functions take log-probabilities ``(..., N)`` (``-inf`` for impossible entries) and return
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

__all__ = ["fixed_mean_kl", "fused_recursive_kl", "probabilities", "softmax_recursive_kl"]


def probabilities(log_p: Tensor) -> Tensor:
    """``exp(log_p)`` for a distribution without gradient, with ``p <= e^2 tiny`` set to 0.

    On CPU ``exp`` takes a slow path (10-70x) wherever its result underflows, ``-inf``
    included, and supervisory targets are mostly ``-inf``: exponentiate ``max(log p, floor)``
    and subtract ``e^floor``. Entries at or below it (< 1e-37 in float32, 1e-307 in float64)
    become exactly 0; the others move by ``e^floor``, lost beside any mass of their row.
    """
    floor = torch.tensor(math.log(torch.finfo(log_p.dtype).tiny) + 2.0, dtype=log_p.dtype)
    return log_p.clamp_min(floor).exp_().sub_(floor.exp()).clamp_min_(0.0)


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



# --------------------------------------------------------------------------------------------
# From the scores: softmaxes, recursion, KL and the gradient in one row-blocked pass


def _mix_coefficients(c: list[float], alpha: float) -> tuple[float, list[float]]:
    """``gamma = sum_{u>=1} c_u (1-a)^u`` and ``delta_v = a sum_{u>v} c_u (1-a)^(u-1-v)``: the
    teacher parts ``sum_{u>=1} c_u p_u = gamma p_0 + sum_v delta_v q_v`` of the gradient."""
    depth = len(c) - 1
    gamma = sum(c[u] * (1.0 - alpha) ** u for u in range(1, depth + 1))
    delta = [alpha * sum(c[u] * (1.0 - alpha) ** (u - 1 - v) for u in range(v + 1, depth + 1))
             for v in range(depth + 1)]
    return gamma, delta


def _students(x: Tensor, c: list[float], first: int) -> tuple[dict[int, Tensor], dict[int, Tensor]]:
    """``e_u = exp(c_u x)`` and ``Z_u = max(sum_j e_u, 1)`` for ``u >= first``. Every row with
    an allowed entry has ``x <= 0`` and a 0, so ``Z_u >= 1`` there; an empty row gets 1."""
    exps, sums = {}, {}
    for u in range(first, len(c)):
        exps[u] = torch.mul(x, c[u]).exp_()
        sums[u] = exps[u].sum(dim=-1, keepdim=True).clamp_min_(1.0)
    return exps, sums


def _terms(x: Tensor, p0: Tensor, log_p0: Tensor, exps: dict[int, Tensor],
           sums: dict[int, Tensor], mass: list[Tensor], c: list[float],
           alpha: float) -> tuple[Tensor, dict[int, Tensor]]:
    """``sum_t sum_ij p_t D_t`` over one row block, and ``F_t = D_t - (row constant)``.

    ``p_t = kappa_t P_t`` with ``P_t = P_{t-1} + a / ((1-a)^t Z_{t-1}) e_{t-1}``,
    ``kappa_t = (1-a)^t`` (``p_t = q_{t-1}`` at ``a = 1``, ``p_t = p_0`` at ``a = 0``), and
    ``D_t = F_t + log kappa_t + log Z_t`` with ``F_t = nan_to_num(log P_t - c_t x)``.
    """
    big = math.sqrt(torch.finfo(x.dtype).max)
    total, logs, mixed = x.new_zeros(()), {}, p0
    for t in range(1, len(c)):
        if alpha == 0.0:
            f, log_kappa = torch.sub(log_p0, x, alpha=c[t]), 0.0
        elif alpha == 1.0:  # log q_{t-1} = c_{t-1} x - log Z_{t-1}
            mixed, log_kappa = exps[t - 1] / sums[t - 1], 0.0
            f = torch.mul(x, c[t - 1] - c[t]).sub_(sums[t - 1].log())
        else:
            scale = sums[t - 1].reciprocal().mul_(alpha / (1.0 - alpha) ** t)
            mixed = (torch.addcmul(mixed, exps[t - 1], scale) if t == 1
                     else mixed.addcmul_(exps[t - 1], scale))
            f, log_kappa = torch.log(mixed).sub_(x, alpha=c[t]), t * math.log1p(-alpha)
        f.nan_to_num_(nan=0.0, posinf=big, neginf=-big)
        kappa = 1.0 if alpha in (0.0, 1.0) else (1.0 - alpha) ** t
        total = total + _dot(mixed, f) * kappa + _dot(mass[t], sums[t].log().add_(log_kappa))
        logs[t] = f
    return total, logs


def _gradient(out: Tensor, p0: Tensor, exps: dict[int, Tensor], sums: dict[int, Tensor],
              logs: dict[int, Tensor], mass: list[Tensor], c: list[float], alpha: float,
              through: bool) -> None:
    """``dL/ds / w`` of one row block into ``out`` (the ``F_t`` are overwritten).

    ``dL/ds = w sum_u q_u (c_u R_u + k_u) - w gamma p_0`` with, per row,
    ``k_u = c_u (m_u - a rowdot(q_u, S_u)) - delta_u``, ``R_u = a S_u``,
    ``S_{K-1} = F_K``, ``S_{u-1} = F_u + (1 - a) S_u`` (``R = 0`` without the teacher's
    gradient) and ``m_u`` the mass of row ``p_u`` (0 for ``u = 0``).
    """
    depth, first = len(c) - 1, 0 if alpha > 0.0 else 1
    gamma, delta = _mix_coefficients(c, alpha)
    torch.mul(exps[depth], mass[depth] * (c[depth] / sums[depth]), out=out)
    carry = logs[depth] if through else None  # S_u
    for u in range(depth - 1, first - 1, -1):
        k = (mass[u] * c[u] if u >= 1 else torch.zeros_like(sums[u])) - delta[u]
        if carry is None:
            out.addcmul_(exps[u], k.div_(sums[u]))
            continue
        k.sub_(torch.linalg.vecdot(exps[u], carry).unsqueeze(-1).div_(sums[u]),
               alpha=alpha * c[u])
        following = logs[u].add_(carry, alpha=1.0 - alpha) if u >= 1 else None
        term = torch.addcmul(k.div_(sums[u]), carry, sums[u].reciprocal().mul_(alpha * c[u]),
                             out=carry)
        out.addcmul_(exps[u], term)
        carry = following
    out.add_(p0, alpha=-gamma)


def _block(scores: Tensor, log_p0: Tensor, mask: Tensor | None, c: list[float], alpha: float,
           through: bool, out: Tensor | None) -> tuple[Tensor, Tensor]:
    """One row block: ``(sum_t sum_ij p_t D_t, rows of p_K with mass)``; ``dL/ds / w`` into
    ``out`` unless it is None."""
    x = scores.clone() if mask is None else scores.masked_fill(~mask, -math.inf)
    x.sub_(x.amax(dim=-1, keepdim=True).clamp_min_(torch.finfo(x.dtype).min))
    exps, sums = _students(x, c, 0 if alpha > 0.0 else 1)
    p0 = probabilities(log_p0)
    mass0 = p0.sum(dim=-1, keepdim=True)
    student = 1.0 if mask is None else mask.any(dim=-1, keepdim=True).to(x.dtype)
    mass = [mass0 * (1.0 - alpha) ** t + student * (1.0 - (1.0 - alpha) ** t)
            for t in range(len(c))]
    total, logs = _terms(x, p0, log_p0, exps, sums, mass, c, alpha)
    if out is not None:
        _gradient(out, p0, exps, sums, logs, mass, c, alpha, through)
        if mask is not None:
            out.masked_fill_(~mask, 0.0)
    return total, (mass[-1] > 0).sum()


class _SoftmaxRecursiveKL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, scores: Tensor, log_teacher: Tensor, mask: Tensor | None,
                taus: tuple[float, ...], alpha: float, through: bool, rows: int) -> Tensor:
        with torch.autocast(device_type=scores.device.type, enabled=False):
            teacher = log_teacher.to(scores.dtype)
            grad = torch.empty_like(scores) if ctx.needs_input_grad[0] else None
            c = [1.0 / tau for tau in taus]
            totals, counts = [], []
            for start in range(0, scores.shape[0], rows):
                part = slice(start, start + rows)
                total, count = _block(scores[part], teacher[part],
                                      None if mask is None else mask[part], c, alpha, through,
                                      None if grad is None else grad[part])
                totals.append(total)
                counts.append(count)
            weight = torch.stack(counts).sum().clamp_min(1).to(scores.dtype).reciprocal()
            value = torch.stack(totals).sum() * weight
        ctx.save_for_backward(grad, weight)
        return value

    @staticmethod
    def backward(ctx, grad_value: Tensor):
        grad, weight = ctx.saved_tensors
        return grad * (grad_value * weight), None, None, None, None, None, None


def softmax_recursive_kl(
    log_teacher: Tensor,
    scores: Tensor,
    temperatures: list[float],
    alpha: float,
    *,
    mask: Tensor | None = None,
    detach_teacher: bool = False,
    block_elements: int = 1 << 15,
) -> Tensor:
    """:func:`fused_recursive_kl` of the students ``log_softmax(scores / tau_u)`` (``u = 0..K``,
    restricted to ``mask``), from the scores: one autograd node whose gradient is formed in the
    forward pass, row block by row block (``block_elements`` entries per block).

    With ``alpha = 0`` the teacher stays ``p(0)`` and ``q(0)`` is never formed: ``K = 1`` and
    ``temperatures = [tau, tau]`` is I-Con's ``1/n sum_i KL(p(.|i) || q(.|i))``.
    """
    if scores.dim() != 2 or log_teacher.shape != scores.shape or (
            mask is not None and mask.shape != scores.shape):
        raise ValueError(f"teacher, scores and mask must have one (B, N) shape, got "
                         f"{tuple(log_teacher.shape)}, {tuple(scores.shape)} and "
                         f"{None if mask is None else tuple(mask.shape)}")
    if len(temperatures) < 2:
        raise ValueError("softmax_recursive_kl needs the temperatures tau_0..tau_K, K >= 1")
    rows = max(1, block_elements // max(1, scores.shape[1]))
    through = alpha > 0.0 and not detach_teacher
    return _SoftmaxRecursiveKL.apply(scores, log_teacher.detach(), mask,
                                     tuple(float(t) for t in temperatures), float(alpha),
                                     through, rows)
