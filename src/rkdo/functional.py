"""Pure tensor math for neighbourhood distributions, in log space.

Every distribution here is a row-stochastic matrix ``P`` of shape ``(B, N)``: row ``i`` is
``p(.|i)``, the distribution over the ``N`` candidate neighbours of anchor ``i``. We carry
``log P`` rather than ``P`` so that small probabilities keep their precision; entries that are
impossible (masked self-pairs, non-neighbours of a k-NN graph) are ``-inf``.

The I-Con objective is the mean row-wise Kullback-Leibler divergence

    L(p, q) = 1/n * sum_i KL(p(.|i) || q(.|i)),
    KL(p || q) = sum_j p_j (log p_j - log q_j),     with 0 log 0 = 0,

and RKDO's recursion mixes the teacher with the student,

    p(t) = (1 - alpha) p(t-1) + alpha q(t-1),

which in log space is ``logaddexp(log(1 - alpha) + log p, log(alpha) + log q)``.

All functions are differentiable and free of NaN gradients at ``-inf`` entries: wherever both
operands of an operation are ``-inf`` the operation is evaluated on a finite stand-in and the
result is put back to ``-inf`` (``masked_fill`` passes no gradient to the filled places).

``check_unit_interval`` (from :mod:`rkdo._validation`) and ``temperature_schedule`` (from
:mod:`rkdo.schedules`) are re-exported here, where they were first published.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rkdo._validation import check_unit_interval
from rkdo.fused import fixed_mean_kl, fused_recursive_kl, probabilities
from rkdo.schedules import temperature_schedule

__all__ = [
    "check_unit_interval",
    "log_normalize",
    "log_mix",
    "log_debias",
    "kl_rows",
    "mean_kl",
    "recursive_kl",
    "temperature_schedule",
    "entropy_rows",
    "perplexity_rows",
]


def log_normalize(scores: Tensor, mask: Tensor | None = None) -> Tensor:
    """Row-wise log-softmax of ``scores`` restricted to ``mask``.

    ``log p(j|i) = s_ij - logsumexp_{k: mask_ik} s_ik`` for allowed ``j``, ``-inf`` elsewhere.
    A row with no allowed entry is returned as all ``-inf`` (it carries no distribution).
    """
    if mask is None:
        return torch.log_softmax(scores, dim=-1)
    if not _needs_grad(scores):
        return _log_normalize_no_grad(scores, mask)
    excluded = ~mask
    # an all -inf row gives NaN (-inf - -inf) and a NaN gradient: give it a finite stand-in
    scores = scores.masked_fill(excluded, float("-inf")).masked_fill(
        ~mask.any(dim=-1, keepdim=True), 0.0)
    # filling every excluded entry (empty rows are all excluded) also stops any gradient there
    return torch.log_softmax(scores, dim=-1).masked_fill(excluded, float("-inf"))


def _log_normalize_no_grad(scores: Tensor, mask: Tensor) -> Tensor:
    """:func:`log_normalize` without ``exp(-inf)``, which CPUs compute 10-70x slower than a
    normal ``exp`` (supervisory kernels mask most entries).

    Offsets from the row maximum are clamped at ``log(tiny) + 2`` (an ``exp`` that stays
    normal): an excluded entry then adds ``e^2 tiny`` to a sum >= 1, which rounding discards. A
    row without allowed entries gets a finite shift, so it comes out all ``-inf``, not NaN.
    """
    filled = torch.where(mask, scores, float("-inf"))
    finfo = torch.finfo(filled.dtype)
    shift = filled.amax(dim=-1, keepdim=True).clamp_min_(finfo.min)
    weights = (filled - shift).clamp_min_(math.log(finfo.tiny) + 2.0).exp_()
    return filled.sub_(weights.sum(dim=-1, keepdim=True).log_().add_(shift))


def _needs_grad(tensor: Tensor) -> bool:
    return torch.is_grad_enabled() and tensor.requires_grad


def log_mix(log_p: Tensor, log_q: Tensor, alpha: float) -> Tensor:
    """``log((1 - alpha) p + alpha q)`` computed stably from ``log p`` and ``log q``."""
    if alpha == 0.0:
        return log_p
    if alpha == 1.0:
        return log_q
    both_zero = torch.isneginf(log_p) & torch.isneginf(log_q)
    mixed = torch.logaddexp(
        log_p.masked_fill(both_zero, 0.0) + math.log1p(-alpha),
        log_q.masked_fill(both_zero, 0.0) + math.log(alpha),
    )
    return mixed.masked_fill(both_zero, float("-inf"))


def log_debias(log_p: Tensor, amount: float, mask: Tensor | None = None) -> Tensor:
    """Leak ``amount`` of the mass to the uniform distribution over allowed candidates.

    ``p'(j|i) = (1 - a) p(j|i) + a / N_i`` where ``N_i`` counts the allowed candidates of row
    ``i`` (all ``N`` columns without a mask). The mixing is done on probabilities, never on
    log-probabilities.
    """
    if amount == 0.0:
        return log_p
    if not _needs_grad(log_p):
        # every allowed entry gets at least a / N_i > 0, so the sum of the two non-negative
        # parts keeps full relative precision in probability space: exp, mix, log once each
        mixed = probabilities(log_p).mul_(1.0 - amount)
        if mask is None:
            return mixed.add_(amount / log_p.shape[-1]).log_()
        allowed = mask.sum(dim=-1, keepdim=True).clamp_min(1).to(mixed.dtype)
        return mixed.add_(mask * (amount / allowed)).log_()
    if mask is None:
        uniform = torch.full_like(log_p, -math.log(log_p.shape[-1]))
    else:
        uniform = log_normalize(torch.zeros_like(log_p), mask)
    return log_mix(log_p, uniform, amount)


def kl_rows(log_p: Tensor, log_q: Tensor) -> Tensor:
    """Row-wise ``KL(p(.|i) || q(.|i)) = sum_j p_ij (log p_ij - log q_ij)``, shape ``(B,)``.

    Terms with ``p_ij = 0`` contribute 0 whatever ``q_ij`` is (``0 log 0 = 0``).
    """
    absent = torch.isneginf(log_p)
    log_ratio = log_p.masked_fill(absent, 0.0) - log_q.masked_fill(absent, 0.0)
    return (log_p.exp() * log_ratio).sum(dim=-1)


def mean_kl(log_p: Tensor, log_q: Tensor) -> Tensor:
    """``1/n sum_i KL(p(.|i) || q(.|i))`` over the ``n`` rows where ``p`` has mass.

    Rows of ``p`` that are entirely ``-inf`` (an anchor without any positive, e.g. a SupCon
    anchor whose label is unique in the batch with self-pairs masked) are left out of the mean.
    """
    if log_p.shape == log_q.shape and not _needs_grad(log_p):
        return fixed_mean_kl(log_p, log_q)
    has_mass = ~torch.isneginf(log_p).all(dim=-1)
    # a row without mass has KL 0, so summing all rows and dividing by the count is the mean
    # over rows with mass, without asking the device whether there are any (no host sync)
    return kl_rows(log_p, log_q).sum() / has_mass.sum().clamp_min(1)


def recursive_kl(
    log_teacher: Tensor,
    log_students: list[Tensor],
    alpha: float,
    *,
    detach_teacher: bool = False,
) -> Tensor:
    """RKDO's in-step recursion, as in the reference notebooks.

    Given ``log p(0)`` and the students ``log q(0), ..., log q(K)``:

        p(t) = (1 - alpha) p(t-1) + alpha q(t-1)           for t = 1..K
        L    = sum_{t=1}^{K} 1/n sum_i KL(p(t)(.|i) || q(t)(.|i))

    With ``detach_teacher`` the student enters the teacher without gradient (``q(t-1)`` is
    treated as a constant target), otherwise gradients flow through ``p(t)`` as in the reference.

    A teacher without gradient (every supervisory kernel's) goes to
    :func:`rkdo.fused.fused_recursive_kl`: one autograd node, backward in closed form. A teacher
    that needs a gradient takes the log-space path of :func:`mean_kl` over :func:`log_mix`.
    """
    if len(log_students) < 2:
        raise ValueError("recursive_kl needs the students q(0)..q(K) with K >= 1")
    alpha = check_unit_interval("alpha", alpha)
    same_shape = all(s.shape == log_teacher.shape for s in log_students)
    if same_shape and not _needs_grad(log_teacher):
        return fused_recursive_kl(log_teacher, log_students, alpha,
                                  detach_teacher=detach_teacher)
    return _recursive_kl_autograd(log_teacher, log_students, alpha, detach_teacher)


def _recursive_kl_autograd(
    log_teacher: Tensor, log_students: list[Tensor], alpha: float, detach_teacher: bool
) -> Tensor:
    """:func:`recursive_kl` by autograd, for a teacher that needs a gradient.

    Each student's ``-inf`` entries (masked candidates) are replaced once, up front, by the
    dtype's most negative finite number. Its ``exp`` is exactly 0, so mixtures and KL terms are
    unchanged; since every student is then finite, ``p(t)`` is finite for ``t >= 1`` and
    ``-inf - -inf`` cannot occur, so the mixing and the KL need no per-operation guards
    (``clamp_min`` gives the replaced entries no gradient).
    """
    log_p = _finite_log(log_teacher) if alpha == 0.0 else log_teacher
    # a probability that is 0 stays at the floor under mixing (logaddexp of two floors rounds to
    # the floor); anything with mass is > floor / 2 by hundreds of orders of magnitude
    threshold = torch.finfo(log_students[0].dtype).min / 2
    keep, take = math.log1p(-alpha) if alpha < 1 else 0.0, math.log(alpha) if alpha > 0 else 0.0
    students = [_finite_log(s) for s in log_students]
    total = log_teacher.new_zeros(())
    for t in range(1, len(students)):
        previous = students[t - 1].detach() if detach_teacher else students[t - 1]
        if alpha == 1.0:
            log_p = previous
        elif alpha > 0.0:
            log_p = torch.logaddexp(log_p + keep, previous + take)
        per_row = (log_p.exp() * (log_p - students[t])).sum(dim=-1)
        rows = (log_p.detach().amax(dim=-1) > threshold).sum().clamp_min(1)
        total = total + per_row.sum() / rows
    return total


def _finite_log(log_p: Tensor) -> Tensor:
    """``log_p`` with ``-inf`` replaced by the most negative finite number of its dtype."""
    return log_p.clamp_min(torch.finfo(log_p.dtype).min)


def entropy_rows(log_p: Tensor) -> Tensor:
    """Shannon entropy in nats of each row, ``H_i = -sum_j p_ij log p_ij``."""
    absent = torch.isneginf(log_p)
    return -(log_p.exp() * log_p.masked_fill(absent, 0.0)).sum(dim=-1)


def perplexity_rows(log_p: Tensor) -> Tensor:
    """Perplexity ``exp(H_i)`` of each row (the effective number of neighbours)."""
    return entropy_rows(log_p).exp()
