"""Neighbour-embedding costs: value and gradient in the embedding ``y``, and a teacher step.

With learned scores ``s_ij = log w(y_i - y_j)`` from a core kernel (Student-t with ``nu``
degrees of freedom for t-SNE and the InfoNCE embedding, a Gaussian for SNE):

- joint (t-SNE): ``Q_ij = w_ij / Z`` over all pairs ``i != j``, ``sum P = 1``,
  ``KL(P || Q) = sum P log P - sum P s + log Z``;
- conditional (SNE, InfoNCE): ``q(j|i) = w_ij / sum_{k != i} w_ik``, rows of ``p`` sum to one,
  ``L = 1/n sum_i [sum_j p log p - sum_j p s + log sum_{k != i} w_ik]`` (the InfoNCE loss with
  every other point a negative).

Early exaggeration multiplies the attractive term ``-sum P s`` by ``e`` (the field's convention:
the gradient is ``e`` attraction minus repulsion, the reported value is the plain KL). The
recursive teacher is ``P <- (1 - alpha) P + alpha Q`` with ``Q`` detached. :class:`SparseJoint`
is t-SNE with a k-NN ``P``: attraction over its edges, repulsion and ``Z`` by FFT interpolation
(:mod:`rkdo.estimators._interpolation`); its teacher step keeps ``P`` on the k-NN edges,
``P_e <- (1 - alpha) P_e + alpha Q_e``, renormalised to sum to one over them.

Every cost follows the :class:`Cost` protocol, which is all the optimiser loop sees. The sparse
cost keeps ``P`` in float32 for speed; entries that float32 cannot hold (below ~1.4e-45, common
on well-separated data) are dropped, which changes no force in float32, and the ``sum P log P``
of the static ``P`` is the float64 one of :meth:`SparseJoint.entropy_term`, so the reported KL
is finite and exact to float32 rounding.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from rkdo.estimators._affinity import SparseJoint
from rkdo.estimators._attraction import attraction
from rkdo.estimators._interpolation import repulsion
from rkdo.functional import log_mix
from rkdo.kernels import LearnedKernel

__all__ = ["Cost", "DenseCost", "SparseCost"]


class Cost(Protocol):
    """What the optimiser needs from a neighbour-embedding cost."""

    def gradient(self, y: Tensor, exaggeration: float = 1.0, *,
                 value: bool = True) -> tuple[float, Tensor]:
        """``(KL against the current P, gradient of the exaggerated cost in y)``; with
        ``value=False`` the KL may be skipped (NaN) where it costs more than the gradient."""
        ...

    def static_kl(self, y: Tensor) -> float:
        """``KL(P(0) || Q(y))`` against the initial ``P``, whatever the teacher did."""
        ...

    def teacher_step(self, alpha: float) -> None:
        """``P <- (1 - alpha) P + alpha Q`` with the ``Q`` of the last :meth:`gradient`."""
        ...


class DenseCost:
    """Exact O(n^2) objective over all pairs; ``joint`` picks t-SNE's normalisation."""

    def __init__(self, log_p: Tensor, kernel: LearnedKernel, *, joint: bool) -> None:
        self.log_p = log_p
        self.log_p0 = log_p
        self.kernel = kernel
        self.joint = joint
        n = log_p.shape[0]
        self.mask = ~torch.eye(n, dtype=torch.bool, device=log_p.device)
        self._log_q: Tensor | None = None

    def _terms(self, y: Tensor, log_p: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(sum P log P, sum P s, log Z)``, per row for conditional objectives."""
        p = log_p.exp()
        scores = self.kernel.scores(y, y).masked_fill(~self.mask, float("-inf"))
        if self.joint:
            log_z = torch.logsumexp(scores.reshape(-1), dim=0)
        else:
            log_z = torch.logsumexp(scores, dim=1)
        finite_p = log_p.masked_fill(torch.isneginf(log_p), 0.0)  # 0 log 0 = 0
        finite_s = scores.masked_fill(~self.mask, 0.0)
        axis = None if self.joint else 1
        entropy = (p * finite_p).sum() if axis is None else (p * finite_p).sum(axis)
        attraction = (p * finite_s).sum() if axis is None else (p * finite_s).sum(axis)
        self._log_q = (scores - (log_z if self.joint else log_z[:, None])).detach()
        return entropy, attraction, log_z

    def gradient(self, y: Tensor, exaggeration: float = 1.0, *,
                 value: bool = True) -> tuple[float, Tensor]:
        """``(KL, d surrogate / dy)`` at exaggeration ``e``; the KL comes with the gradient
        here, whatever ``value`` says."""
        y = y.detach().requires_grad_(True)
        entropy, attraction, log_z = self._terms(y, self.log_p)
        surrogate = (log_z - exaggeration * attraction).mean()
        (grad,) = torch.autograd.grad(surrogate, y)
        kl = (entropy - attraction + log_z).mean()
        return float(kl.detach()), grad

    def static_kl(self, y: Tensor) -> float:
        """``KL(P(0) || Q)``: the static yardstick when a teacher has moved ``P``."""
        with torch.no_grad():
            entropy, attraction, log_z = self._terms(y, self.log_p0)
        return float((entropy - attraction + log_z).mean())

    def teacher_step(self, alpha: float) -> None:
        """``P <- (1 - alpha) P + alpha Q`` with the ``Q`` of the last evaluation."""
        if alpha > 0.0 and self._log_q is not None:
            self.log_p = log_mix(self.log_p, self._log_q, alpha)


class SparseCost:
    """t-SNE with a sparse joint ``P`` and interpolated repulsion (module docstring).

    On the CPU the attraction is one fused pass (:mod:`rkdo.estimators._attraction`), elsewhere
    torch's gathers and scatters; the two agree to rounding.
    """

    def __init__(self, affinity: SparseJoint, dof: float, device: torch.device,
                 dtype: torch.dtype = torch.float32) -> None:
        values = torch.from_numpy(affinity.values).to(dtype)
        keep = (values > 0.0).numpy()  # float32 underflow: no force in float32
        order = np.lexsort((affinity.cols[keep], affinity.rows[keep]))  # by row, then column
        rows, cols = affinity.rows[keep][order], affinity.cols[keep][order]
        self.rows = torch.from_numpy(rows).to(device)
        self.cols = torch.from_numpy(cols).to(device)
        self.values = values[torch.from_numpy(keep)][torch.from_numpy(order)].to(device)
        self.values0 = self.values
        self.entropy0 = affinity.entropy_term()
        self.n = affinity.n
        self.dof = float(dof)
        self._fused = torch.device(device).type == "cpu"
        self._starts = np.searchsorted(rows, np.arange(self.n + 1)).astype(np.int64)
        self._cols32 = cols.astype(np.int32)
        self._last: tuple[Tensor, Tensor] | None = None

    def _edges(self, y: Tensor) -> tuple[Tensor, Tensor]:
        diff = y[self.rows] - y[self.cols]
        base = (1.0 + diff.square().sum(-1) / self.dof).reciprocal()
        return diff, base

    def _entropy(self, values: Tensor) -> float:
        if values is self.values0:
            return self.entropy0
        return 2.0 * float(torch.special.xlogy(values, values).sum())  # the teacher's P

    def _attraction(self, y: Tensor, values: Tensor, exaggeration: float,
                    with_cross: bool = True) -> tuple[Tensor, float]:
        """``(A, C)`` of :mod:`rkdo.estimators._attraction` (``C`` NaN unless
        ``with_cross``)."""
        if self._fused:
            force, cross = attraction(np.ascontiguousarray(y.detach().numpy()), self._starts,
                                      self._cols32, values.numpy(), self.dof, exaggeration,
                                      with_cross)
            return torch.from_numpy(force), cross
        diff, base = self._edges(y)
        force = (exaggeration * values * base)[:, None] * diff
        out = torch.zeros_like(y).index_add_(0, self.rows, force)
        out.index_add_(0, self.cols, -force)
        if not with_cross:
            return out, math.nan
        return out, 0.5 * (self.dof + 1.0) * float((values * torch.log(base)).sum())

    def gradient(self, y: Tensor, exaggeration: float = 1.0, *,
                 value: bool = True) -> tuple[float, Tensor]:
        """``(KL, gradient)``; ``value=False`` skips the KL's logarithm per edge (NaN)."""
        pull, cross = self._attraction(y, self.values, exaggeration, value)
        r, z = repulsion(y, dof=self.dof)
        scale = 2.0 * (self.dof + 1.0) / self.dof
        self._last = (y.detach(), z.detach())
        kl = self._entropy(self.values) - 2.0 * cross + float(torch.log(z)) if value else math.nan
        return kl, scale * (pull - r / z)

    def static_kl(self, y: Tensor) -> float:
        with torch.no_grad():
            _, cross = self._attraction(y, self.values0, 1.0)
            _, z = repulsion(y, dof=self.dof)
            return self.entropy0 - 2.0 * cross + float(torch.log(z))

    def teacher_step(self, alpha: float) -> None:
        if alpha > 0.0 and self._last is not None:
            y, z = self._last
            q = self._edges(y)[1].pow(0.5 * (self.dof + 1.0)) / z
            mixed = (1.0 - alpha) * self.values + alpha * q
            self.values = mixed / (2.0 * mixed.sum())
