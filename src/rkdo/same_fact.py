"""The teacher of the same-fact kernels, made one block at a time (for :mod:`rkdo.streaming`).

For a per-sample fact ``f`` (sample ids, labels, cluster assignments) and a uniform leak,

    p_0(j|i) = (1 - leak) [f_i = f_j, allowed] / n_same_i + leak [allowed] / n_allowed_i,

with ``n_same_i`` and ``n_allowed_i`` the allowed candidates of row ``i`` that share its fact,
and all of them. It is what :class:`~rkdo.kernels.SameAttribute` and its
:class:`~rkdo.kernels.Debiased` leaks give, but any ``(rows, columns)`` block of it can be made
from the facts alone, so the ``(B, N)`` matrix never exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from rkdo.kernels import Debiased, Kernel, SameAttribute
from rkdo.neighbourhood import Neighbourhood

__all__ = ["SameFactTarget"]


@dataclass(frozen=True)
class SameFactTarget:
    """``p_0(j|i) = (1 - leak) [f_i = f_j, allowed] / n_same_i + leak [allowed] / n_allowed_i``.

    The supervisory kernels :class:`~rkdo.kernels.SameAttribute` (ids, labels, assignments)
    and their :class:`~rkdo.kernels.Debiased` leaks (nested leaks ``a_k`` combine into
    ``leak = 1 - prod (1 - a_k)``). A row without an allowed same-fact candidate has only the
    leaked part, as :func:`rkdo.functional.log_debias` gives it.
    """

    anchor_facts: Tensor  # (B,)
    candidate_facts: Tensor  # (N,)
    leak: float = 0.0

    @staticmethod
    def _unwrap(kernel: Kernel) -> tuple[Kernel, float]:
        """The kernel under any leaks, and ``prod (1 - a_k)``."""
        keep = 1.0
        while isinstance(kernel, Debiased):
            keep, kernel = keep * (1.0 - kernel.amount), kernel.base
        return kernel, keep

    @staticmethod
    def supports(kernel: Kernel) -> bool:
        """Whether :meth:`of` makes a target of ``kernel``."""
        base, _ = SameFactTarget._unwrap(kernel)
        return isinstance(base, SameAttribute) and type(base).log_prob is SameAttribute.log_prob

    @staticmethod
    def of(kernel: Kernel, nb: Neighbourhood) -> SameFactTarget | None:
        """The target of ``kernel`` on ``nb``, or None if it cannot be made block by block."""
        if not SameFactTarget.supports(kernel):
            return None
        kernel, keep = SameFactTarget._unwrap(kernel)
        fact = nb.fact(kernel.key)
        return SameFactTarget(fact[nb.anchor_index], fact[nb.candidate_index], 1.0 - keep)

    def same(self, rows: slice, columns: slice, allowed: Tensor | None) -> Tensor:
        same = self.anchor_facts[rows, None] == self.candidate_facts[None, columns]
        return same if allowed is None else same.logical_and_(allowed)

    def block(self, rows: slice, columns: slice, allowed: Tensor | None, counts: Tensor,
              dtype: torch.dtype) -> Tensor:
        """``p_0`` on the block; ``counts`` (2, b, 1) holds ``n_same`` and ``n_allowed``."""
        n_same, n_allowed = counts
        on_same = torch.where(n_same > 0, (1.0 - self.leak) / n_same.clamp_min(1), 0.0)
        p0 = self.same(rows, columns, allowed).to(dtype).mul_(on_same.to(dtype))
        if self.leak > 0.0:
            uniform = (self.leak / n_allowed.clamp_min(1)).to(dtype)
            p0 += uniform if allowed is None else allowed * uniform
        return p0

    def log_rows(self, rows: slice, allowed: Tensor | None, dtype: torch.dtype) -> Tensor:
        """``log p_0`` of full rows (every candidate), counts taken from the rows themselves:
        two values per row, put in place by one ``where`` (no ``log`` of the zeros)."""
        same = self.same(rows, slice(None), allowed)
        n_same = same.sum(dim=-1, keepdim=True).to(dtype)
        n_allowed = (torch.full_like(n_same, same.shape[1]) if allowed is None
                     else allowed.sum(dim=-1, keepdim=True).to(dtype))
        uniform = self.leak / n_allowed.clamp_min(1)
        on_same = torch.where(n_same > 0, (1.0 - self.leak) / n_same.clamp_min(1), 0.0)
        log_p0 = torch.where(same, (on_same + uniform).log(), uniform.log())
        return log_p0 if allowed is None or self.leak == 0.0 else log_p0.masked_fill_(
            ~allowed, -math.inf)

    def masses(self, counts: Tensor) -> Tensor:
        """Row masses of ``p_0`` (b, 1), all on allowed entries."""
        n_same, n_allowed = counts
        some, any_allowed = (n_same > 0).to(counts.dtype), (n_allowed > 0).to(counts.dtype)
        return some * (1.0 - self.leak) + any_allowed * self.leak
