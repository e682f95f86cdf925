"""Full-batch RKDO: the paper's formal setting, all ``n`` anchors against all ``n`` candidates.

Outer iterations ``t = 1..T`` alternate a teacher step and an inner minimisation:

    p(t) = (1 - alpha_t) p(t-1) + alpha_t q(t-1)                       (teacher step)
    q(t) = argmin_q L(p(t), q),    L(p, q) = 1/n sum_i KL(p(.|i) || q(.|i))   (inner step)

and ``L(t) = L(p(t), q(t))``. By joint convexity of KL (the Jensen step),

    L(p(t), q(t-1)) = L((1 - a) p(t-1) + a q(t-1), q(t-1)) <= (1 - a) L(t-1),

so whenever the inner step starts at ``q(t-1)`` and never raises the loss, ``L(t) <= (1 - a)
L(t-1)`` at every ``t``, whatever the capacity of the student. Iteration ``t = 0`` fits the
student to the static ``p(0)``. Each iteration records ``L(p(t-1), q(t-1))`` (``previous``),
``L(p(t), q(t-1))`` (``before``), ``L(p(t), q(t))`` (``after``) and the static I-Con loss
``L(p(0), q(t))``, which is the fair yardstick: ``after`` can reach zero simply because the
teacher collapses onto the student.

Students (each an ``nn.Module`` whose ``forward()`` returns the ``(n, n)`` matrix ``log q``):

- :class:`FreeLogits`: non-parametric, one free logit per (anchor, candidate), infinite capacity;
- :class:`FreeEmbeddings`: non-parametric, a free ``D``-dimensional vector per sample and a
  learned kernel (Student-t by default, as in t-SNE; or cosine);
- :class:`EncoderStudent`: parametric, an encoder applied to the whole dataset.

Inner minimisers: ``"exact"`` (free logits only: ``q = p``), ``"armijo"`` (gradient descent
with a backtracking line search: monotone by construction), ``"lbfgs"`` (torch's L-BFGS with a
strong-Wolfe line search) and ``"adam"``. With ``monotone=True`` an inner step that ends above
its start is undone, so every minimiser is monotone, as the theorem requires.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from rkdo._validation import check_int, check_positive, check_unit_interval
from rkdo.functional import log_mix, log_normalize, mean_kl
from rkdo.kernels import Kernel, LearnedKernel, StudentT
from rkdo.neighbourhood import build_neighbourhood
from rkdo.schedules import alpha_schedule

__all__ = [
    "INNER_METHODS",
    "FreeLogits",
    "FreeEmbeddings",
    "EncoderStudent",
    "FullBatchRKDO",
    "static_log_prob",
]

INNER_METHODS: tuple[str, ...] = ("exact", "armijo", "lbfgs", "adam")


def static_log_prob(
    kernel: Kernel,
    n_samples: int,
    *,
    inputs: Tensor | None = None,
    labels: Tensor | None = None,
    form: str = "single",
) -> Tensor:
    """The ``(n, n)`` static supervisory ``log p(0)`` of ``kernel`` over the whole dataset.

    ``form="single"`` excludes self-pairs (SNE, t-SNE, k-NN graphs); ``"pair"`` keeps them (the
    anchor's other view is its positive).
    """
    placeholder = torch.zeros(n_samples, 1, dtype=torch.float64)
    nb = build_neighbourhood(
        placeholder,
        None if form == "single" else placeholder,
        form=form,
        inputs=inputs,
        labels=labels,
    )
    with torch.no_grad():
        return kernel.log_prob(nb)


def _self_mask(n: int) -> Tensor:
    return ~torch.eye(n, dtype=torch.bool)


class FreeLogits(nn.Module):
    """``q(j|i) = softmax_j(theta_ij)`` over the allowed candidates: one free logit per pair.

    Args:
        n_samples: ``n``.
        mask: ``(n, n)`` bool, True where ``j`` may be a neighbour of ``i`` (None: all).
        init: optional ``(n, n)`` initial logits (default: standard normal, ``seed``).
    """

    def __init__(self, n_samples: int, *, mask: Tensor | None = None,
                 init: Tensor | None = None, seed: int = 0) -> None:
        super().__init__()
        if init is None:
            generator = torch.Generator().manual_seed(seed)
            init = torch.randn(n_samples, n_samples, generator=generator, dtype=torch.float64)
        if init.shape != (n_samples, n_samples):
            raise ValueError(f"init must have shape ({n_samples}, {n_samples}), got {init.shape}")
        self.logits = nn.Parameter(init.clone())
        self.register_buffer("mask", mask)

    def forward(self) -> Tensor:
        return log_normalize(self.logits, self.mask)

    @torch.no_grad()
    def set_distribution(self, log_p: Tensor) -> None:
        """Make ``q = p`` exactly (the exact inner minimiser)."""
        floor = torch.finfo(self.logits.dtype).min / 4
        self.logits.copy_(log_p.to(self.logits.dtype).clamp_min(floor))


class FreeEmbeddings(nn.Module):
    """A free vector ``z_i`` in ``R^dim`` per sample; ``q`` from a learned kernel, self excluded.

    ``q(j|i) ∝ k(z_i, z_j)`` over ``j != i``, with ``kernel`` a :class:`~rkdo.kernels.LearnedKernel`
    (default Student-t with one degree of freedom: t-SNE's). ``init`` defaults to ``N(0, 1e-4)``
    as in t-SNE.
    """

    def __init__(self, n_samples: int, dim: int = 2, *, kernel: LearnedKernel | None = None,
                 init: Tensor | None = None, seed: int = 0) -> None:
        super().__init__()
        if init is None:
            generator = torch.Generator().manual_seed(seed)
            init = 1e-2 * torch.randn(n_samples, dim, generator=generator, dtype=torch.float64)
        if init.shape != (n_samples, dim):
            raise ValueError(f"init must have shape ({n_samples}, {dim}), got {tuple(init.shape)}")
        self.embeddings = nn.Parameter(init.clone())
        self.kernel = StudentT() if kernel is None else kernel

    def forward(self) -> Tensor:
        return self.kernel.log_prob(build_neighbourhood(self.embeddings, form="single"))


class EncoderStudent(nn.Module):
    """A parametric student: ``q(j|i) ∝ k(f(x_i), f(x_j))`` over the whole dataset, self excluded.

    ``encoder`` maps ``inputs`` (all ``n`` samples, one batch) to embeddings; ``kernel``
    defaults to the Student-t kernel.
    """

    def __init__(self, encoder: nn.Module, inputs: Tensor,
                 kernel: LearnedKernel | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.register_buffer("inputs", inputs)
        self.kernel = StudentT() if kernel is None else kernel

    def embed(self) -> Tensor:
        """``f(x)`` for every sample, ``(n, d)``."""
        return self.encoder(self.inputs)

    def forward(self) -> Tensor:
        return self.kernel.log_prob(build_neighbourhood(self.embed(), form="single"))


class FullBatchRKDO:
    """Run ``T`` outer iterations of full-batch RKDO (module docstring) and record ``L(t)``.

    Args:
        student: a module whose ``forward()`` returns ``log q``, ``(n, n)``.
        log_p0: the static target ``log p(0)``, ``(n, n)`` row-normalised (``-inf`` allowed
            where ``q`` may also vanish, e.g. self-pairs).
        alpha, schedule, alpha_final: the teacher's ``alpha_t`` (see
            :func:`rkdo.schedules.alpha_schedule`; ``t`` counts outer iterations).
        outer_steps: ``T``.
        inner: the inner minimiser, one of :data:`INNER_METHODS`.
        inner_steps: iterations of the inner minimiser per outer iteration.
        lr: the (initial) step size of the inner minimiser.
        monotone: undo an inner step that ends above its start.

    After :meth:`fit`: ``history_`` (one dict per iteration ``t = 0..T``), ``log_teacher_``.
    """

    def __init__(
        self,
        student: nn.Module,
        log_p0: Tensor,
        *,
        alpha: float = 0.5,
        schedule: str = "constant",
        alpha_final: float = 0.0,
        outer_steps: int = 10,
        inner: str = "armijo",
        inner_steps: int = 20,
        lr: float = 1.0,
        monotone: bool = True,
    ) -> None:
        if inner not in INNER_METHODS:
            raise ValueError(f"inner must be one of {INNER_METHODS}, got {inner!r}")
        if inner == "exact" and not isinstance(student, FreeLogits):
            raise ValueError("inner='exact' needs a FreeLogits student (q can equal any p)")
        inner_steps = check_int("inner_steps", inner_steps, low=0)
        lr = check_positive("lr", lr)
        if log_p0.dim() != 2 or log_p0.shape[0] != log_p0.shape[1]:
            raise ValueError(f"log_p0 must be a square (n, n) matrix, got {tuple(log_p0.shape)}")
        self.student = student
        self.log_p0 = log_p0.detach()
        self.alpha = check_unit_interval("alpha", alpha)
        self.alpha_at = alpha_schedule(schedule, alpha, outer_steps, final=alpha_final)
        self.outer_steps = int(outer_steps)
        self.inner = inner
        self.inner_steps = inner_steps
        self.lr = lr
        self.monotone = bool(monotone)
        self._optimizer: torch.optim.Optimizer | None = None

    # -- inner minimisation ------------------------------------------------------------------

    def _parameters(self) -> list[nn.Parameter]:
        return [p for p in self.student.parameters() if p.requires_grad]

    def loss(self, log_p: Tensor) -> Tensor:
        """``L(p, q)`` for the student's current ``q``."""
        return mean_kl(log_p, self.student())

    def _snapshot(self) -> list[Tensor]:
        return [p.detach().clone() for p in self._parameters()]

    @torch.no_grad()
    def _restore(self, snapshot: list[Tensor]) -> None:
        for p, saved in zip(self._parameters(), snapshot, strict=True):
            p.copy_(saved)

    def _armijo(self, log_p: Tensor) -> None:
        params = self._parameters()
        step = self.lr
        for _ in range(self.inner_steps):
            value = self.loss(log_p)
            grads = torch.autograd.grad(value, params)
            value = float(value.detach())
            slope = float(sum(g.square().sum() for g in grads))
            if slope == 0.0:
                return
            start = self._snapshot()
            for _ in range(60):
                with torch.no_grad():
                    for p, g, s in zip(params, grads, start, strict=True):
                        p.copy_(s - step * g)
                    trial = self.loss(log_p)
                if float(trial) <= value - 1e-4 * step * slope:
                    step *= 2.0  # try a longer step next time
                    break
                step *= 0.5
            else:
                self._restore(start)
                return

    def _lbfgs(self, log_p: Tensor) -> None:
        optimizer = torch.optim.LBFGS(self._parameters(), lr=self.lr, max_iter=self.inner_steps,
                                      line_search_fn="strong_wolfe")

        def closure() -> Tensor:
            optimizer.zero_grad()
            value = self.loss(log_p)
            value.backward()
            return value

        optimizer.step(closure)

    def _adam(self, log_p: Tensor) -> None:
        if self._optimizer is None:
            self._optimizer = torch.optim.Adam(self._parameters(), lr=self.lr)
        for _ in range(self.inner_steps):
            self._optimizer.zero_grad()
            self.loss(log_p).backward()
            self._optimizer.step()

    def minimise(self, log_p: Tensor) -> None:
        """Lower ``L(p, q)`` over the student's parameters, starting from the current ``q``."""
        if self.inner == "exact":
            self.student.set_distribution(log_p)
            return
        with torch.no_grad():
            start_value = float(self.loss(log_p))
        start = self._snapshot()
        {"armijo": self._armijo, "lbfgs": self._lbfgs, "adam": self._adam}[self.inner](log_p)
        if self.monotone:
            with torch.no_grad():
                if float(self.loss(log_p)) > start_value:
                    self._restore(start)

    # -- outer loop -------------------------------------------------------------------------

    def fit(self, callback: Callable[[int, FullBatchRKDO], dict[str, Any]] | None = None
            ) -> FullBatchRKDO:
        """Run iterations ``t = 0..T``; ``callback(t, self)`` may add entries to each record."""
        log_p = self.log_p0
        with torch.no_grad():
            log_q = self.student().detach()
        if bool((torch.isneginf(log_q) & ~torch.isneginf(log_p)).any()):
            raise ValueError(
                "the student gives zero probability where p(0) has mass (infinite KL); "
                "exclude those pairs from p(0) or allow them in the student"
            )
        self.history_: list[dict[str, Any]] = []
        previous = float(mean_kl(log_p, log_q))
        for t in range(self.outer_steps + 1):
            alpha = self.alpha_at(t) if t > 0 else 0.0
            log_p = log_mix(log_p, log_q, alpha)
            before = float(mean_kl(log_p, log_q))
            self.minimise(log_p)
            with torch.no_grad():
                log_q = self.student().detach()
            after = float(mean_kl(log_p, log_q))
            record = {
                "t": t,
                "alpha": alpha,
                "previous": previous,
                "before": before,
                "after": after,
                "bound": (1.0 - alpha) * previous,
                "static": float(mean_kl(self.log_p0, log_q)),
            }
            if callback is not None:
                record.update(callback(t, self))
            self.history_.append(record)
            previous = after
        self.log_teacher_ = log_p
        return self
