"""I-Con's and RKDO's KL from a softmax kernel's scores: the softmaxes, the recursion, the KL
and the whole gradient ``dL/ds`` in one pass over row blocks, one autograd node.

The students are ``l_u = log_softmax(c_u s)`` over the allowed entries (``c_u = 1 / tau_u``,
``u = 0..K``); the numbers are those of :func:`rkdo.fused.fused_recursive_kl` over them (see
that module for the recursion and its backward in ``l``). Here, per row block, with
``x = s - max_j s``, ``e_u = exp(c_u x)``, ``Z_u = sum_j e_u`` and ``q_u = e_u / Z_u``:

**Mixtures, scaled**: ``p_t = kappa_t P_t`` with ``P_0 = p_0`` and
``P_t = carry_t P_{t-1} + (a / kappa_t) q_{t-1}``. Normally ``kappa_t = (1-a) kappa_{t-1}`` and
``carry_t = 1`` (one ``addcmul`` per step, ``q`` entering unnormalised); once ``kappa`` would
fall below ``2^-8`` the scale is reset, ``kappa_t = 1``, ``carry_t = (1-a) kappa_{t-1}``. The
reset keeps ``P_t <= 2^8`` and ``|log kappa_t| <= 8 ln 2`` at any depth (without it,
``(1-a)^t`` overflowed float32 at depth 18, alpha 0.99 and made ``log kappa`` a large constant
that cancelled to 2% error).

**Value**: with ``F_t = log P_t - c_t x`` (so ``D_t = log p_t - l_t = F_t + log (Z_t kappa_t)``)
and the row masses ``m_t``, ``sum_ij p_t D_t = kappa_t <P_t, F_t> + sum_i m_t log (Z_t kappa_t)``.

**Gradient** (``w = 1 / n``, ``n`` rows of ``p_K`` with mass): with ``S_{K-1} = F_K``,
``S_{u-1} = F_u + (1-a) S_u`` (a per-row constant in ``F`` cancels in the softmax backward),

    dL/ds / w = sum_u q_u (a c_u S_u + k_u) - gamma p_0,
    k_u = c_u m_u - a c_u rowdot(q_u, S_u) - delta_u      (m_0 := 0, S_K := 0),

where ``sum_{u>=1} c_u p_u = gamma p_0 + sum_v delta_v q_v``. It is formed divided by
``-gamma`` (which saves the pass ``G -= gamma p_0``) unless ``gamma < 2^-20``. With
``detach_teacher`` the ``S`` terms are dropped. At ``alpha = 0`` the teacher stays ``p_0``:
``D_t = log p_0 - c_t x + log Z_t``, ``dL/ds / w = sum_{u>=1} c_u (m_0 q_u - p_0)``.

The scalars ``kappa_t``, ``carry_t``, ``gamma``, ``delta_u`` and the scale of a call are
:mod:`rkdo.fused_plan`'s (:class:`~rkdo.fused_plan.Plan`, made once per configuration).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from rkdo.fused import _dot, probabilities
from rkdo.fused_plan import Plan, make_plan

__all__ = ["RowBlocks", "default_rows", "softmax_mean_kl", "softmax_recursive_kl"]

WORKSPACE_ELEMENTS = 2 ** 24  # default row blocks hold at most this many entries in all


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
    """``p_0``, its row masses (b, 1), its masses on the allowed entries (the softmax
    backward drops masked entries) and the ``log p_0`` that goes with ``p_0``. With a mask:
    :func:`probabilities`. Without: ``p_0 = exp(max(log p_0, floor))`` (every entry
    ``>= e^floor``, so ``log p_t`` is finite without ``nan_to_num``; a row of floors only is
    counted empty, as :func:`probabilities` makes it)."""
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


def _masses(mass0: Tensor, mask: Tensor | None, plan: Plan) -> Tensor:
    """Row masses ``m_t = sum_j p_t`` (K+1, b, 1): ``(1-a)^t m_0 + (1 - (1-a)^t) [q row
    has an allowed entry]``, since every ``q_u`` row sums to 1 or is empty."""
    fresh = plan.fresh_t if mask is None else plan.fresh_t * mask.any(dim=-1, keepdim=True)
    return torch.addcmul(fresh, plan.keep_t, mass0)


def _mixtures(p0: Tensor, exps: Tensor, inverse: Tensor, plan: Plan, out: Tensor) -> None:
    """``P_t`` into ``out`` (K, b, N), ``p_t = kappa_t P_t`` (see the module docstring);
    ``P_t = q_{t-1}`` at ``a = 1``. Scaling by ``kappa_t`` is what lets ``q = e / Z`` enter
    unnormalised."""
    depth = out.shape[0]
    if plan.alpha == 1.0:
        torch.mul(exps[:depth], inverse[:depth], out=out)
        return
    slots, students = out.unbind(0), exps.unbind(0)
    scales = (inverse[:depth] * plan.mix_t).unbind(0)
    for t in range(depth):
        previous = p0 if t == 0 else slots[t - 1]
        if plan.carry[t] == 1.0:
            torch.addcmul(previous, students[t], scales[t], out=slots[t])
        else:
            torch.mul(previous, plan.carry[t], out=slots[t]).addcmul_(students[t], scales[t])


def _recursive_block(x: Tensor, log_p0: Tensor, mask: Tensor | None, plan: Plan,
                     ws: _Workspace, out: Tensor | None) -> tuple[Tensor, Tensor]:
    """One row block for ``alpha > 0``: ``(sum_t sum_ij p_t D_t, row masses)``, and
    ``dL/ds / w`` into ``out`` unless it is None (see the module docstring)."""
    c = plan.c
    sums = _exponentials(x, c, ws.exps)
    inverse = sums.reciprocal()
    p0, mass0, allowed0, _ = _teacher(log_p0, mask, ws)
    mass = _masses(mass0, mask, plan)
    _mixtures(p0, ws.exps, inverse, plan, ws.mixed)
    # F_t / ln 2 = log2 P_t - c_t x / ln 2, F_t = D_t - log (Z_t kappa_t); log2 is the faster
    logs = torch.log2(ws.mixed, out=ws.logs)
    for t, row in enumerate(logs.unbind(0), start=1):
        row.sub_(x, alpha=c[t] / math.log(2.0))
    if mask is not None:
        big = math.sqrt(torch.finfo(x.dtype).max)
        logs.nan_to_num_(nan=0.0, posinf=big, neginf=-big)
    total = _dot(mass[1:], sums[1:].log().add_(plan.log_kappa[:, None, None]))
    for mixed, f, k in zip(ws.mixed.unbind(0), logs.unbind(0), plan.kappa, strict=True):
        total = total + _dot(mixed, f) * (k * math.log(2.0))
    if out is not None:
        allowed = mass if mask is None else _masses(allowed0, mask, plan)
        _recursive_gradient(out, p0, ws.exps, inverse, logs, allowed, plan)
    return total, mass[-1]


def _start(out: Tensor, p0: Tensor, plan: Plan, t1: Tensor, t2: Tensor) -> None:
    """``out = t1 t2 + p_0`` (``out`` holds ``G / (-gamma)``), or ``t1 t2 - gamma p_0`` when
    the gradient is not scaled: dividing by ``-gamma`` saves the pass ``G -= gamma p_0``, and
    the backward pass multiplies by ``-gamma`` along with the upstream gradient anyway."""
    if plan.scale != 1.0:
        torch.addcmul(p0, t1, t2, out=out)
        return
    torch.mul(t1, t2, out=out)
    if plan.gamma != 0.0:
        out.add_(p0, alpha=-plan.gamma)


def _recursive_gradient(out: Tensor, p0: Tensor, exps: Tensor, inverse: Tensor,
                        logs: Tensor, mass: Tensor, plan: Plan) -> None:
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


def _fixed_block(x: Tensor, log_p0: Tensor, mask: Tensor | None, plan: Plan,
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


def _block(scores: Tensor, log_p0: Tensor, mask: Tensor | None, plan: Plan, ws: _Workspace,
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


class RowBlocks:
    """The row-block engine of :func:`softmax_recursive_kl`, for callers that make the rows
    themselves (:mod:`rkdo.streaming` makes each block's scores and teacher and drops them).

    ``engine(scores, log_teacher, mask, out)`` takes one row block ``(b, N)`` (full rows, at
    most ``rows`` of them) and returns ``(sum_t sum_ij p_t D_t, rows of p_K with mass)``,
    writing ``dL/ds / (w * scale)`` into ``out`` unless it is None; the loss is
    ``sum totals / sum counts`` and its gradient ``out * scale / sum counts``.
    """

    def __init__(self, taus: tuple[float, ...], alpha: float, through: bool, like: Tensor,
                 rows: int) -> None:
        """``like``: a tensor of the scores' dtype, device and number of columns."""
        self.plan = make_plan(taus, alpha, through, like)
        depth = len(taus) - 1
        self.workspace = _Workspace.create(rows, like, depth + 1 if alpha > 0.0 else depth,
                                           depth)

    @property
    def scale(self) -> float:
        return self.plan.scale

    def __call__(self, scores: Tensor, log_teacher: Tensor, mask: Tensor | None,
                 out: Tensor | None) -> tuple[Tensor, Tensor]:
        return _block(scores, log_teacher.to(scores.dtype), mask, self.plan, self.workspace,
                      out)


class _SoftmaxRecursiveKL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, scores: Tensor, log_teacher: Tensor, mask: Tensor | None,
                taus: tuple[float, ...], alpha: float, through: bool, rows: int) -> Tensor:
        with torch.autocast(device_type=scores.device.type, enabled=False):
            engine = RowBlocks(taus, alpha, through, scores, min(rows, scores.shape[0]))
            grad = torch.empty_like(scores) if ctx.needs_input_grad[0] else None
            totals, counts = [], []
            for start in range(0, scores.shape[0], rows):
                part = slice(start, start + rows)
                total, count = engine(scores[part], log_teacher[part],
                                      None if mask is None else mask[part],
                                      None if grad is None else grad[part])
                totals.append(total)
                counts.append(count)
            weight = torch.stack(counts).sum().clamp_min(1).to(scores.dtype).reciprocal()
            value = torch.stack(totals).sum() * weight
        ctx.scale = engine.scale
        ctx.save_for_backward(grad, weight)
        return value

    @staticmethod
    @once_differentiable  # the gradient is a stored tensor: no second derivative
    def backward(ctx, grad_value: Tensor):
        grad, weight = ctx.saved_tensors
        return grad * (grad_value * weight * ctx.scale), None, None, None, None, None, None


def default_rows(columns: int, depth: int) -> int:
    """Rows per block: ``max(64, 65536 // N)`` (fastest on CPU at N = 512 and 2048), fewer
    where the ``3K + 4`` buffers of a block would pass ``WORKSPACE_ELEMENTS`` entries."""
    columns = max(1, columns)
    return max(1, min(max(64, 65536 // columns), WORKSPACE_ELEMENTS // ((3 * depth + 4) * columns)))


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
    """:func:`rkdo.fused.fused_recursive_kl` of the students ``log_softmax(scores / tau_u)``
    (``u = 0..K``, restricted to ``mask``), from the scores: one autograd node whose gradient
    is formed in the forward pass, row block by row block (``block_rows`` rows per block; by
    default :func:`default_rows`).

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
    rows = block_rows if block_rows is not None else default_rows(scores.shape[1],
                                                                   len(temperatures) - 1)
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
