"""Streaming neighbourhood KL: I-Con's and RKDO's loss without any ``(B, N)`` matrix.

The loss of :func:`rkdo.fused_scores.softmax_recursive_kl` (students
``l_u = log_softmax(c_u s)``, ``c_u = 1 / tau_u``, ``u = 0..K``; teacher ``p_0`` mixed as
``p_t = (1 - a) p_{t-1} + a q_{t-1}``)

    L = w sum_{t=1}^{K} sum_ij p_t,ij (log p_t,ij - l_t,ij),       w = 1 / n,

computed from row blocks of anchors against column blocks of candidates: the scores
``s = kernel.scores(anchors[R], candidates[C])`` and the teacher are made one ``(b, c)`` block
at a time and dropped, so memory is ``O(B d + N d + K b c)``. The row normalisers come first,
with an online log-sum-exp (flash-attention style):

1. **Statistics**: per row, ``M = max_j s`` and ``Z_u = sum_j exp(c_u (s - M))`` for every
   ``u`` (rescaled by ``exp(c_u (M_old - M_new))`` whenever the maximum grows), and the
   teacher's row counts. Then ``l_u = c_u s - (c_u M + log Z_u)`` is known block by block.
2. **Value** (and, where the gradient needs no row sums, the gradient): per block, ``q_u``,
   ``p_t``, ``D_t = log p_t - l_t`` (``0 log 0 = 0``) and ``sum p_t D_t``.
3. **Gradient through the teacher**: ``dL/dl_u = q_u R_u - p_u [u >= 1]`` with
   ``R_u = a S_u``, ``S_{K-1} = D_K``, ``S_{u-1} = D_u + (1 - a) S_u`` (see :mod:`rkdo.fused`);
   the softmax backward needs the row sums ``rowdot(q_u, S_u)``, gathered in pass 2, so the
   blocks are made once more:

       dL/ds / w = sum_{u<K} a c_u q_u (S_u - rowdot(q_u, S_u)) + sum_{u>=1} c_u (m_u q_u - p_u),

   ``m_u`` the mass of ``p_u`` on the allowed entries. Without a gradient through the
   teacher (``detach_teacher`` or ``alpha = 0``) only the last sum remains and pass 3 is not
   needed. ``dL/ds`` goes through ``kernel.scores`` block by block (autograd on the block),
   into gradients of the anchors and candidates formed in the forward pass.

The teacher is produced block by block too (:class:`rkdo.same_fact.SameFactTarget`, also
exported here: augmentation pairs, labels, cluster assignments, each with any uniform leak).
The numbers equal today's materialised path to float rounding; I-Con is ``alpha = 0``, ``K = 1``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from rkdo.fused_scores import WORKSPACE_ELEMENTS, RowBlocks, default_rows
from rkdo.same_fact import SameFactTarget

__all__ = ["SameFactTarget", "streaming_mean_kl", "streaming_recursive_kl"]

Scores = Callable[[Tensor, Tensor], Tensor]
LN2 = math.log(2.0)


class _Problem(NamedTuple):
    """One call's inputs other than the embeddings."""

    scores: Scores
    target: SameFactTarget
    mask: Tensor | None
    taus: tuple[float, ...]  # tau_u, u = 0..K
    c: list[float]  # c_u = 1 / tau_u
    alpha: float
    through: bool
    rows: int
    columns: int | None  # None: full rows (panels)


class _Rows(NamedTuple):
    """Statistics of one row block after pass 1 (and pass 2)."""

    rows: slice
    offset: Tensor  # (K+1, b, 1): c_u M + log Z_u, in log2 units
    counts: Tensor  # (2, b, 1): n_same, n_allowed
    masses: Tensor  # (K+1, b, 1): m_u
    rowdots: Tensor | None  # (K, b, 1): rowdot(q_u, S_u) in log2 units


def _blocks(length: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, length)) for start in range(0, length, size)]


def _allowed(problem: _Problem, rows: slice, columns: slice) -> Tensor | None:
    return None if problem.mask is None else problem.mask[rows, columns]


def _statistics(problem: _Problem, anchors: Tensor, candidates: Tensor, rows: slice) -> _Rows:
    """Pass 1: online row maxima, normalisers of every temperature and the target's counts."""
    c2 = torch.tensor(problem.c, dtype=anchors.dtype, device=anchors.device)[:, None, None] / LN2
    size = rows.stop - rows.start
    top = anchors.new_full((size, 1), -math.inf)
    sums = anchors.new_zeros((len(problem.c), size, 1))
    counts = anchors.new_zeros((2, size, 1))
    floor = torch.finfo(anchors.dtype).min
    for columns in _blocks(candidates.shape[0], problem.columns):
        allowed = _allowed(problem, rows, columns)
        s = problem.scores(anchors[rows], candidates[columns])
        if allowed is not None:
            s = s.masked_fill(~allowed, -math.inf)
        new_top = torch.maximum(top, s.amax(dim=-1, keepdim=True)).clamp_min_(floor)
        sums.mul_(torch.exp2(c2 * (top - new_top)))
        sums += torch.exp2(c2 * (s - new_top)).sum(dim=-1, keepdim=True)
        top = new_top
        counts[0] += problem.target.same(rows, columns, allowed).sum(dim=-1, keepdim=True)
        counts[1] += (columns.stop - columns.start if allowed is None
                      else allowed.sum(dim=-1, keepdim=True))
    offset = torch.addcmul(sums.clamp_min_(1.0).log2_(), c2, top)
    keep = (1.0 - problem.alpha) ** torch.arange(len(problem.c), dtype=anchors.dtype,
                                                  device=anchors.device)[:, None, None]
    masses = torch.lerp((counts[1] > 0).to(anchors.dtype), problem.target.masses(counts), keep)
    return _Rows(rows, offset, counts, masses, None)


class _Block(NamedTuple):
    """The elementwise quantities of one (row block, column block)."""

    q: Tensor  # (K+1, b, c)
    p: Tensor  # (K+1, b, c): p_0 .. p_K (p_t = p_0 at alpha = 0)
    d: Tensor  # (K, b, c): D_t / ln 2, t = 1..K


def _block(problem: _Problem, stats: _Rows, columns: slice, s: Tensor) -> _Block:
    """``q_u``, ``p_t`` and ``D_t`` on one block from its scores and the row statistics."""
    allowed = _allowed(problem, stats.rows, columns)
    c2 = torch.tensor(problem.c, dtype=s.dtype, device=s.device)[:, None, None] / LN2
    log_q = torch.addcmul(-stats.offset, c2, s)  # log2 q_u, (K+1, b, c)
    if allowed is not None:
        log_q.masked_fill_(~allowed, -math.inf)
    q = torch.exp2(log_q)
    p = s.new_empty(q.shape)
    p[0] = problem.target.block(stats.rows, columns, allowed, stats.counts, s.dtype)
    for t in range(1, len(problem.c)):
        if problem.alpha == 0.0:
            p[t] = p[0]
        else:
            torch.lerp(p[t - 1], q[t - 1], problem.alpha, out=p[t])
    big = math.sqrt(torch.finfo(s.dtype).max)
    d = torch.log2(p[1:]).sub_(log_q[1:]).nan_to_num_(nan=0.0, posinf=big, neginf=-big)
    return _Block(q, p, d)


def _carry(d: Tensor, alpha: float) -> Tensor:
    """``S_u`` (K, b, c) in place of the ``D_t``: ``S_{u-1} = D_u + (1 - a) S_u``."""
    for u in range(d.shape[0] - 2, -1, -1):
        d[u].add_(d[u + 1], alpha=1.0 - alpha)
    return d


def _gradient(problem: _Problem, stats: _Rows, block: _Block, through: bool) -> Tensor:
    """``dL/ds / w`` on one block (see the module docstring)."""
    c, q, p = problem.c, block.q, block.p
    grad = torch.zeros_like(p[0])
    for u in range(1, len(c)):
        grad.addcmul_(q[u], stats.masses[u], value=c[u]).sub_(p[u], alpha=c[u])
    if through:
        carried = _carry(block.d, problem.alpha).sub_(stats.rowdots)
        for u in range(len(c) - 1):
            grad.addcmul_(q[u], carried[u], value=problem.alpha * c[u] * LN2)
    return grad


Grads = tuple[Tensor, Tensor]  # the anchors' and the candidates' gradient, accumulated


def _value_pass(problem: _Problem, anchors: Tensor, candidates: Tensor, stats: _Rows,
                grads: Grads | None) -> tuple[Tensor, _Rows]:
    """Pass 2: ``sum p_t D_t`` over the row block; the gradient too unless it needs pass 3,
    else the row sums ``rowdot(q_u, S_u)`` pass 3 needs."""
    total = anchors.new_zeros(())
    rowdots = anchors.new_zeros((len(problem.c) - 1, stats.rows.stop - stats.rows.start, 1))
    for columns in _blocks(candidates.shape[0], problem.columns):
        s, backward = _scores(problem, anchors, candidates, stats.rows, columns,
                              None if problem.through else grads)
        block = _block(problem, stats, columns, s)
        total += torch.dot(block.p[1:].reshape(-1), block.d.reshape(-1))
        if backward is not None:
            backward(_gradient(problem, stats, block, through=False))
        elif problem.through and grads is not None:
            rowdots += (block.q[:-1] * _carry(block.d, problem.alpha)).sum(dim=-1, keepdim=True)
    return total * LN2, stats._replace(rowdots=rowdots)


def _gradient_pass(problem: _Problem, anchors: Tensor, candidates: Tensor, stats: _Rows,
                   grads: Grads) -> None:
    """Pass 3: the gradient through the teacher, block by block."""
    for columns in _blocks(candidates.shape[0], problem.columns):
        s, backward = _scores(problem, anchors, candidates, stats.rows, columns, grads)
        backward(_gradient(problem, stats, _block(problem, stats, columns, s), through=True))


def _scores(problem: _Problem, anchors: Tensor, candidates: Tensor, rows: slice,
            columns: slice, grads: Grads | None) -> tuple[Tensor, Callable[[Tensor], None] | None]:
    """The block's scores and, with ``grads``, a function that adds ``G`` chained through the
    kernel's scores into ``grads[0][rows]`` and ``grads[1][columns]``."""
    if grads is None:
        return problem.scores(anchors[rows], candidates[columns]), None
    with torch.enable_grad():
        a = anchors[rows].detach().requires_grad_()
        b = candidates[columns].detach().requires_grad_()
        s = problem.scores(a, b)

    def backward(grad: Tensor) -> None:
        grad_a, grad_b = torch.autograd.grad(s, (a, b), grad)
        grads[0][rows] += grad_a
        grads[1][columns] += grad_b

    return s.detach(), backward


def _by_blocks(problem: _Problem, anchors: Tensor, candidates: Tensor,
               grads: Grads | None) -> tuple[list[Tensor], list[Tensor], float]:
    """Column blocks: passes 1-3 per row block (see the module docstring)."""
    totals, counts = [], []
    for rows in _blocks(anchors.shape[0], problem.rows):
        stats = _statistics(problem, anchors, candidates, rows)
        total, stats = _value_pass(problem, anchors, candidates, stats, grads)
        if grads is not None and problem.through:
            _gradient_pass(problem, anchors, candidates, stats, grads)
        totals.append(total)
        counts.append((stats.masses[-1] > 0).sum())  # rows of p_K with mass
    return totals, counts, 1.0


def _by_panels(problem: _Problem, anchors: Tensor, candidates: Tensor,
               grads: Grads | None) -> tuple[list[Tensor], list[Tensor], float]:
    """Full-row panels: each row block's scores and teacher against every candidate go
    through :class:`~rkdo.fused_scores.RowBlocks` (one pass, the fused path's arithmetic)."""
    every = slice(0, candidates.shape[0])
    engine = RowBlocks(problem.taus, problem.alpha, problem.through,
                       anchors.new_empty((0, every.stop)), min(problem.rows, anchors.shape[0]))
    totals, counts = [], []
    for rows in _blocks(anchors.shape[0], problem.rows):
        allowed = _allowed(problem, rows, every)
        s, backward = _scores(problem, anchors, candidates, rows, every, grads)
        log_p0 = problem.target.log_rows(rows, allowed, s.dtype)
        out = None if backward is None else torch.empty_like(s)
        total, count = engine(s, log_p0, allowed, out)
        if backward is not None:
            backward(out)
        totals.append(total)
        counts.append(count)
    return totals, counts, engine.scale


class _StreamingKL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, anchors: Tensor, candidates: Tensor, problem: _Problem) -> Tensor:
        grads = None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            grads = (torch.zeros_like(anchors), torch.zeros_like(candidates))
        with torch.autocast(device_type=anchors.device.type, enabled=False):
            run = _by_blocks if problem.columns is not None else _by_panels
            totals, counts, ctx.scale = run(problem, anchors, candidates, grads)
            weight = torch.stack(counts).sum().clamp_min(1).to(anchors.dtype).reciprocal()
            value = torch.stack(totals).sum() * weight
        ctx.save_for_backward(weight, *(grads or ()))
        return value

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_value: Tensor):
        weight, grad_anchors, grad_candidates = ctx.saved_tensors
        scale = grad_value * weight * ctx.scale
        return grad_anchors * scale, grad_candidates * scale, None


def streaming_recursive_kl(
    anchors: Tensor,
    candidates: Tensor,
    scores: Scores,
    target: SameFactTarget,
    temperatures: list[float],
    alpha: float,
    *,
    mask: Tensor | None = None,
    detach_teacher: bool = False,
    block_rows: int | None = None,
    block_columns: int | None = None,
) -> Tensor:
    """RKDO's recursive KL (:func:`rkdo.fused_scores.softmax_recursive_kl`) of the students
    ``log_softmax(scores(anchors, candidates) / tau_u)`` and the teacher ``target``, streamed
    over ``block_rows x block_columns`` blocks (see the module docstring).

    ``scores(a, c)`` gives the temperature-1 scores ``(b, c)`` of anchor rows ``a`` against
    candidate rows ``c`` (a learned kernel's ``scores``); ``mask`` (B, N) is read block by
    block. Gradients reach ``anchors`` and ``candidates``; ``alpha = 0`` keeps ``p_0``.

    Blocks: with ``block_columns=None`` each block of ``block_rows`` anchors meets every
    candidate at once (a panel; one pass, the fused path's arithmetic; memory
    ``O(B d + N d + K block_rows N)``, ``block_rows`` by default
    :func:`~rkdo.fused_scores.default_rows`, at most ``WORKSPACE_ELEMENTS`` entries in all).
    With ``block_columns`` set, blocks of ``block_rows x block_columns`` (default 512 rows)
    and the online log-sum-exp (two or three passes; memory ``O(B d + N d + K block^2)``).
    ``block_columns=None`` switches to 1024-column blocks where fewer than 8 full rows fit.
    """
    if anchors.dim() != 2 or candidates.dim() != 2:
        raise ValueError(f"anchors and candidates must be 2-D (rows, dim), got "
                         f"{tuple(anchors.shape)} and {tuple(candidates.shape)}")
    shape = (anchors.shape[0], candidates.shape[0])
    if mask is not None and tuple(mask.shape) != shape:
        raise ValueError(f"the mask must have shape {shape}, got {tuple(mask.shape)}")
    if len(temperatures) < 2:
        raise ValueError("streaming_recursive_kl needs the temperatures tau_0..tau_K, K >= 1")
    depth = len(temperatures) - 1
    if block_columns is None and WORKSPACE_ELEMENTS // ((3 * depth + 4) * shape[1]) < 8:
        block_columns = 1024
    if block_rows is None:
        block_rows = 512 if block_columns is not None else default_rows(shape[1], depth)
    if block_rows < 1 or (block_columns is not None and block_columns < 1):
        raise ValueError(f"block sizes must be >= 1, got {block_rows} x {block_columns}")
    taus = tuple(float(tau) for tau in temperatures)
    problem = _Problem(scores, target, mask, taus, [1.0 / tau for tau in taus], float(alpha),
                       alpha > 0.0 and not detach_teacher, block_rows, block_columns)
    return _StreamingKL.apply(anchors, candidates, problem)


def streaming_mean_kl(anchors: Tensor, candidates: Tensor, scores: Scores,
                      target: SameFactTarget, temperature: float, *,
                      mask: Tensor | None = None, block_rows: int | None = None,
                      block_columns: int | None = None) -> Tensor:
    """I-Con's ``1/n sum_i KL(p(.|i) || q(.|i))`` streamed: :func:`streaming_recursive_kl` at
    ``alpha = 0``, ``K = 1``."""
    return streaming_recursive_kl(anchors, candidates, scores, target,
                                  [temperature, temperature], 0.0, mask=mask,
                                  block_rows=block_rows, block_columns=block_columns)
