"""Fused KL terms of I-Con and RKDO: one custom autograd step each, backward in closed form.

Two families: :func:`fixed_mean_kl` and :func:`fused_recursive_kl` take log-probabilities;
:func:`softmax_mean_kl` and :func:`softmax_recursive_kl` take the scores of a softmax kernel
(``l_u = log_softmax(c_u s)``, ``c_u = 1 / tau_u``) and do the softmaxes, the recursion, the KL
and the whole gradient ``dL/ds`` in one pass over row blocks (derivation at the end).

The first two take log-probabilities ``(..., N)`` (``-inf`` for impossible entries) and return
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

import functools
import math
from typing import NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["fixed_mean_kl", "fused_recursive_kl", "probabilities", "softmax_mean_kl",
           "softmax_recursive_kl"]


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





# --------------------------------------------------------------------------------------------
# From the scores: softmaxes, recursion, KL and the gradient in one row-blocked pass


class _Plan(NamedTuple):
    """Per-call constants of :func:`softmax_recursive_kl` (see the module docstring)."""

    c: list[float]  # c_u = 1 / tau_u, u = 0..K
    alpha: float
    through: bool  # gradient through the teacher
    gamma: float  # sum_{u>=1} c_u p_u = gamma p_0 + sum_v delta_v q_v
    scale: float  # the gradient is formed divided by this: -gamma (1 where gamma = 0)
    delta_t: Tensor  # delta_u, (K+1, 1, 1)
    direct_t: Tensor  # c_u for u >= 1, 0 for u = 0, (K+1, 1, 1)
    lift_t: Tensor  # a c_u ln 2 for u < K, (K, 1, 1) (the F_t are stored as F_t / ln 2)
    log_kappa: Tensor  # log (1-a)^t for t = 1..K (0 at a = 1), (K,)
    keep_t: Tensor  # (1-a)^t, t = 0..K, (K+1, 1, 1)
    fresh_t: Tensor  # 1 - (1-a)^t, (K+1, 1, 1)
    mix_t: Tensor  # a / (1-a)^t, t = 1..K, (K, 1, 1) (1 at a = 1, unused there)


def _plan(taus: tuple[float, ...], alpha: float, through: bool, like: Tensor) -> _Plan:
    return _cached_plan(taus, alpha, through, like.dtype, like.device)


@functools.lru_cache(maxsize=64)
def _cached_plan(taus: tuple[float, ...], alpha: float, through: bool, dtype: torch.dtype,
                 device: torch.device) -> _Plan:
    """The plan of one configuration; its small tensors are made once and only read."""
    c, keep = [1.0 / tau for tau in taus], 1.0 - alpha
    depth = len(c) - 1
    gamma = sum(c[u] * keep ** u for u in range(1, depth + 1))
    delta = [alpha * sum(c[u] * keep ** (u - 1 - v) for u in range(v + 1, depth + 1))
             for v in range(depth + 1)]
    log_keep = math.log(keep) if 0.0 < keep < 1.0 else 0.0

    def column(values: list[float]) -> Tensor:
        return torch.tensor(values, dtype=dtype, device=device)[:, None, None]

    return _Plan(c, alpha, through, gamma, -gamma if gamma != 0.0 else 1.0, column(delta),
                 column([0.0, *c[1:]]),
                 column([alpha * cu * math.log(2.0) for cu in c[:depth]]),
                 column([t * log_keep for t in range(1, depth + 1)]).view(-1),
                 column([keep ** t for t in range(depth + 1)]),
                 column([1.0 - keep ** t for t in range(depth + 1)]),
                 column([alpha / keep ** t if keep > 0.0 else 1.0 for t in range(1, depth + 1)]))


class _Workspace(NamedTuple):
    """Buffers of one row block, allocated once per call and reused by every block (a fresh
    allocation per block costs more in page faults than the arithmetic done in it)."""

    x: Tensor  # (b, N)
    exps: Tensor  # (students, b, N)
    p0: Tensor  # (b, N)
    log_p0: Tensor  # (b, N)
    mixed: Tensor  # (K, b, N)
    logs: Tensor  # (K, b, N)

    @staticmethod
    def create(rows: int, like: Tensor, students: int, depth: int) -> _Workspace:
        shape, mixing = (rows, like.shape[-1]), depth if students > depth else 0
        return _Workspace(like.new_empty(shape), like.new_empty((students, *shape)),
                          like.new_empty(shape), like.new_empty(shape),
                          like.new_empty((mixing, *shape)), like.new_empty((depth, *shape)))

    def first(self, rows: int) -> _Workspace:
        if rows == self.x.shape[0]:
            return self
        return _Workspace(*(buffer[:rows] if buffer.dim() == 2 else buffer[:, :rows]
                            for buffer in self))


def _shifted(scores: Tensor, mask: Tensor | None, out: Tensor) -> Tensor:
    """``x = s - max_j s`` over the allowed entries (``-inf`` elsewhere; an empty row stays
    ``-inf``): ``x <= 0`` with a 0 in every row that has an allowed entry."""
    if mask is not None:
        scores = out.copy_(scores).masked_fill_(~mask, -math.inf)
    shift = scores.amax(dim=-1, keepdim=True).clamp_min_(torch.finfo(scores.dtype).min)
    return torch.sub(scores, shift, out=out)


def _exponentials(x: Tensor, c: list[float], out: Tensor) -> Tensor:
    """``e_u = exp(c_u x)`` into ``out`` (len(c), b, N); returns ``Z_u = max(sum_j e_u, 1)``,
    (len(c), b, 1), so ``q_u = e_u / Z_u``. ``Z_u >= 1`` in every row with an allowed entry
    (it holds an ``x = 0``), an empty row gets 1. ``exp(y) = 2^(y / ln 2)``: CPUs compute
    ``exp2`` about twice as fast as ``exp``."""
    for cu, slot in zip(c, out.unbind(0), strict=True):
        torch.mul(x, cu / math.log(2.0), out=slot)
    return out.exp2_().sum(dim=-1, keepdim=True).clamp_min_(1.0)


def _teacher(log_p0: Tensor, mask: Tensor | None,
             ws: _Workspace) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``p_0``, its row masses ``m_0`` (b, 1), the masses on the allowed entries (what the
    softmax backward sees: the gradient at a masked entry is dropped) and the ``log p_0`` that
    goes with ``p_0``.

    With a mask: :func:`probabilities`. Without: ``p_0 = exp(max(log p_0, floor))``, every
    entry at least ``e^floor`` (``8.7e-38`` in float32), so every mixture ``p_t`` is positive
    and ``log p_t`` finite without a pass of ``nan_to_num``; a row whose mass is only floors is
    counted empty, as :func:`probabilities` makes it.
    """
    if mask is not None:
        p0 = probabilities(log_p0, out=ws.p0)
        allowed = torch.where(mask, p0, p0.new_zeros(()), out=ws.log_p0)
        return p0, p0.sum(dim=-1, keepdim=True), allowed.sum(dim=-1, keepdim=True), log_p0
    floor = math.log(torch.finfo(log_p0.dtype).tiny) + 2.0
    clamped = torch.clamp_min(log_p0, floor, out=ws.log_p0)
    p0 = torch.mul(clamped, 1.0 / math.log(2.0), out=ws.p0).exp2_()
    mass0 = p0.sum(dim=-1, keepdim=True)
    mass0.mul_(mass0 > 2.0 * log_p0.shape[-1] * math.exp(floor))
    return p0, mass0, mass0, clamped


def _masses(mass0: Tensor, mask: Tensor | None, plan: _Plan) -> Tensor:
    """Row masses ``m_t = sum_j p_t`` (K+1, b, 1): ``(1-a)^t m_0 + (1 - (1-a)^t) [q row
    has an allowed entry]``, since every ``q_u`` row sums to 1 or is empty."""
    fresh = plan.fresh_t if mask is None else plan.fresh_t * mask.any(dim=-1, keepdim=True)
    return torch.addcmul(fresh, plan.keep_t, mass0)


def _mixtures(p0: Tensor, exps: Tensor, inverse: Tensor, alpha: float, mixing: Tensor,
              out: Tensor) -> list[float]:
    """``P_t`` into ``out`` (K, b, N) with ``p_t = kappa_t P_t``: ``P_0 = p_0``,
    ``P_t = P_{t-1} + a / (1-a)^t q_{t-1}``, ``kappa_t = (1-a)^t`` (``P_t = q_{t-1}``,
    ``kappa_t = 1`` at ``a = 1``); returns the ``kappa_t``. Scaling by ``kappa_t`` is what
    lets ``q = e / Z`` enter unnormalised."""
    depth = out.shape[0]
    if alpha == 1.0:
        torch.mul(exps[:depth], inverse[:depth], out=out)
        return [1.0] * depth
    slots, students = out.unbind(0), exps.unbind(0)
    scales = (inverse[:depth] * mixing).unbind(0)
    for t in range(depth):
        torch.addcmul(p0 if t == 0 else slots[t - 1], students[t], scales[t], out=slots[t])
    return [(1.0 - alpha) ** t for t in range(1, depth + 1)]


def _recursive_block(x: Tensor, log_p0: Tensor, mask: Tensor | None, plan: _Plan,
                     ws: _Workspace, out: Tensor | None) -> tuple[Tensor, Tensor]:
    """One row block for ``alpha > 0``: ``(sum_t sum_ij p_t D_t, row masses)``, and
    ``dL/ds / w`` into ``out`` unless it is None (see the module docstring)."""
    c = plan.c
    sums = _exponentials(x, c, ws.exps)
    inverse = sums.reciprocal()
    p0, mass0, allowed0, _ = _teacher(log_p0, mask, ws)
    mass = _masses(mass0, mask, plan)
    kappa = _mixtures(p0, ws.exps, inverse, plan.alpha, plan.mix_t, ws.mixed)
    # F_t / ln 2 = log2 P_t - c_t x / ln 2, F_t = D_t - log (Z_t kappa_t); log2 is the faster
    logs = torch.log2(ws.mixed, out=ws.logs)
    for t, row in enumerate(logs.unbind(0), start=1):
        row.sub_(x, alpha=c[t] / math.log(2.0))
    if mask is not None:
        big = math.sqrt(torch.finfo(x.dtype).max)
        logs.nan_to_num_(nan=0.0, posinf=big, neginf=-big)
    total = _dot(mass[1:], sums[1:].log().add_(plan.log_kappa[:, None, None]))
    for mixed, f, k in zip(ws.mixed.unbind(0), logs.unbind(0), kappa, strict=True):
        total = total + _dot(mixed, f) * (k * math.log(2.0))
    if out is not None:
        allowed = mass if mask is None else _masses(allowed0, mask, plan)
        _recursive_gradient(out, p0, ws.exps, inverse, logs, allowed, plan)
    return total, mass[-1]


def _start(out: Tensor, p0: Tensor, plan: _Plan, t1: Tensor, t2: Tensor) -> None:
    """``out = t1 t2 + p_0`` (``out`` holds ``G / (-gamma)``), or ``t1 t2`` when
    ``gamma = 0``: dividing by ``-gamma`` saves the pass ``G -= gamma p_0``, and the backward
    pass multiplies by ``-gamma`` along with the upstream gradient anyway."""
    if plan.gamma == 0.0:
        torch.mul(t1, t2, out=out)
    else:
        torch.addcmul(p0, t1, t2, out=out)


def _recursive_gradient(out: Tensor, p0: Tensor, exps: Tensor, inverse: Tensor,
                        logs: Tensor, mass: Tensor, plan: _Plan) -> None:
    """``G = dL/ds / w = sum_u q_u (a c_u S_u + k_u) - gamma p_0``, divided by
    ``plan.scale``, into ``out`` (``logs``, the ``F_t / ln 2``, is overwritten), with
    ``k_u = c_u m_u - a c_u rowdot(q_u, S_u) - delta_u`` (``m_0 := 0``)."""
    alpha, depth = plan.alpha, len(plan.c) - 1
    rows = torch.addcmul(-plan.delta_t, mass, plan.direct_t)
    scaled = inverse / plan.scale
    students = exps.unbind(0)
    if plan.through:
        carries = logs.unbind(0)
        for u in range(depth - 1, 0, -1):  # S_{u-1} = F_u + (1 - a) S_u, S_{K-1} = F_K
            carries[u - 1].add_(carries[u], alpha=1.0 - alpha)
        lifted = logs.mul_(exps[:depth])  # e_u S_u
        weights = inverse[:depth] * plan.lift_t  # a c_u ln 2 / Z_u
        rows[:depth].sub_(lifted.sum(dim=-1, keepdim=True).mul_(weights))
        parts, weights = lifted.unbind(0), weights.div_(plan.scale).unbind(0)
        _start(out, p0, plan, parts[0], weights[0])
        for part, weight in zip(parts[1:], weights[1:], strict=True):
            out.addcmul_(part, weight)
        rows = rows.mul_(scaled).unbind(0)
        out.addcmul_(students[0], rows[0])
    else:
        rows = rows.mul_(scaled).unbind(0)
        _start(out, p0, plan, students[0], rows[0])
    for student, row in zip(students[1:], rows[1:], strict=True):
        out.addcmul_(student, row)


def _fixed_block(x: Tensor, log_p0: Tensor, mask: Tensor | None, plan: _Plan,
                 ws: _Workspace, out: Tensor | None) -> tuple[Tensor, Tensor]:
    """One row block for ``alpha = 0`` (``p_t = p_0``, ``q_0`` unused), as
    :func:`_recursive_block`: ``D_t = log p_0 - c_t x + log Z_t``,
    ``dL/ds / w = sum_{u>=1} c_u (m_0 q_u - p_0)``."""
    c, exact = plan.c[1:], mask is not None
    sums = _exponentials(x, c, ws.exps)
    p0, mass0, allowed0, log_p0 = _teacher(log_p0, mask, ws)
    total = _dot(mass0, sums.log().sum(dim=0))
    for cu in c:
        ratio = torch.sub(log_p0, x, alpha=cu, out=ws.logs[0])
        if exact:
            big = math.sqrt(torch.finfo(x.dtype).max)
            ratio.nan_to_num_(nan=0.0, posinf=big, neginf=-big)
        total = total + _dot(p0, ratio)
    if out is not None:  # G / (-gamma), as in _recursive_gradient
        weights = sums.reciprocal().mul_(allowed0).mul_(plan.direct_t[1:] / plan.scale)
        _start(out, p0, plan, ws.exps[0], weights[0])  # c_u m_0 / Z_u / (-gamma)
        for u in range(1, len(c)):
            out.addcmul_(ws.exps[u], weights[u])
    return total, mass0


def _block(scores: Tensor, log_p0: Tensor, mask: Tensor | None, plan: _Plan, ws: _Workspace,
           out: Tensor | None) -> tuple[Tensor, Tensor]:
    """One row block: ``(sum_t sum_ij p_t D_t, rows of p_K with mass)``; ``dL/ds / w`` into
    ``out`` unless it is None."""
    ws = ws.first(scores.shape[0])
    x = _shifted(scores, mask, ws.x)
    body = _fixed_block if plan.alpha == 0.0 else _recursive_block
    total, mass = body(x, log_p0, mask, plan, ws, out)
    if out is not None and mask is not None:
        out.masked_fill_(~mask, 0.0)
    return total, (mass > 0).sum()


class _SoftmaxRecursiveKL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, scores: Tensor, log_teacher: Tensor, mask: Tensor | None,
                taus: tuple[float, ...], alpha: float, through: bool, rows: int) -> Tensor:
        with torch.autocast(device_type=scores.device.type, enabled=False):
            plan = _plan(taus, alpha, through, scores)
            teacher = log_teacher.to(scores.dtype)
            grad = torch.empty_like(scores) if ctx.needs_input_grad[0] else None
            depth = len(taus) - 1
            ws = _Workspace.create(min(rows, scores.shape[0]), scores,
                                   depth + 1 if alpha > 0.0 else depth, depth)
            totals, counts = [], []
            for start in range(0, scores.shape[0], rows):
                part = slice(start, start + rows)
                total, count = _block(scores[part], teacher[part],
                                      None if mask is None else mask[part], plan, ws,
                                      None if grad is None else grad[part])
                totals.append(total)
                counts.append(count)
            weight = torch.stack(counts).sum().clamp_min(1).to(scores.dtype).reciprocal()
            value = torch.stack(totals).sum() * weight
        ctx.scale = plan.scale
        ctx.save_for_backward(grad, weight)
        return value

    @staticmethod
    @once_differentiable  # the gradient is a stored tensor: no second derivative
    def backward(ctx, grad_value: Tensor):
        grad, weight = ctx.saved_tensors
        return grad * (grad_value * weight * ctx.scale), None, None, None, None, None, None


def softmax_recursive_kl(
    log_teacher: Tensor,
    scores: Tensor,
    temperatures: list[float],
    alpha: float,
    *,
    mask: Tensor | None = None,
    detach_teacher: bool = False,
    block_rows: int | None = None,
) -> Tensor:
    """:func:`fused_recursive_kl` of the students ``log_softmax(scores / tau_u)`` (``u = 0..K``,
    restricted to ``mask``), from the scores: one autograd node whose gradient is formed in the
    forward pass, row block by row block (``block_rows`` rows per block; by default
    ``max(64, 65536 // N)``, which measured fastest on CPU at N = 512 and 2048).

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
    rows = block_rows if block_rows is not None else max(64, 65536 // max(1, scores.shape[1]))
    if rows < 1:
        raise ValueError(f"block_rows must be >= 1, got {rows}")
    return _SoftmaxRecursiveKL.apply(scores, log_teacher.detach(), mask,
                                     tuple(float(t) for t in temperatures), float(alpha),
                                     alpha > 0.0 and not detach_teacher, rows)


def softmax_mean_kl(log_teacher: Tensor, scores: Tensor, temperature: float, *,
                    mask: Tensor | None = None, block_rows: int | None = None) -> Tensor:
    """I-Con's ``1/n sum_i KL(p(.|i) || q(.|i))`` with ``q = log_softmax(scores / tau)``
    (restricted to ``mask``), from the scores: :func:`softmax_recursive_kl` at ``alpha = 0``,
    ``K = 1``."""
    return softmax_recursive_kl(log_teacher, scores, [temperature, temperature], 0.0,
                                mask=mask, block_rows=block_rows)
