"""The optimiser of :class:`~rkdo.estimators.NeighbourEmbedding`: descent on free points, or
Adam on a network whose output is the embedding; both see only a :class:`Cost`.

Two phases: for ``early_exaggeration_iter`` steps the attraction is exaggerated by ``e`` and the
momentum is 0.5, then ``e = 1`` and the momentum is 0.8 (update and gains restart there). Free
points move by

    u <- momentum u - eta g * grad,    y <- y + u / max(1, |u_i| / max_step_norm)

with ``eta = max(n / e / 4, 50) / damping`` when ``learning_rate="auto"`` (``damping`` 10 for
SNE, 1 otherwise) and per-coordinate gains ``g`` (delta-bar-delta: +0.2 where the gradient
changes sign, x0.8 elsewhere, at least 0.01). The network instead takes Adam steps (``lr``
1e-3 when ``"auto"``) on the pull-back of the same gradient.

After every step the recursive teacher moves ``P`` by ``alpha_t``: 0 during early
exaggeration, then :func:`rkdo.schedules.alpha_schedule` at ``step - early_exaggeration_iter``
over the ``max_iter - early_exaggeration_iter`` steps left (decaying to 0 unless constant).
Free points stop early, after early exaggeration, when the gradient norm falls below
``min_grad_norm`` or when the KL (checked every 50 steps) has not improved for
``n_iter_without_progress`` steps; both stop when a callback returns true (called every 50
steps as ``f(iteration, kl, embedding)``). ``history`` gets one ``{iteration, kl, alpha}``
every 50 steps and at the last. The KL is asked of the cost only at the steps that read it (a
multiple of 50, the step before one, the last): the sparse t-SNE cost spends two thirds of its
attraction on it. A non-finite gradient, or KL where it is computed, raises
``FloatingPointError``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from rkdo.estimators._gradients import Cost
from rkdo.schedules import alpha_schedule

__all__ = ["CHECK_EVERY", "Optimiser"]

CHECK_EVERY = 50


@dataclass
class Optimiser:
    """The settings of one run (the estimator's parameters) and what the run records:
    ``history``, ``learning_rate`` (the last phase's) and ``stop_reason``."""

    max_iter: int
    early_exaggeration: float
    early_exaggeration_iter: int
    learning_rate: float | str
    max_step_norm: float | None
    min_grad_norm: float
    n_iter_without_progress: int
    alpha: float
    alpha_schedule: str
    damping: float = 1.0
    callbacks: Callable | list[Callable] | tuple[Callable, ...] | None = None
    verbose: bool = False
    history: list[dict[str, float]] = field(default_factory=list, init=False)
    learning_rate_: float = field(default=math.nan, init=False)
    stop_reason: str = field(default="max_iter", init=False)
    _best: tuple[float, int] = field(default=(math.inf, 0), init=False, repr=False)

    def _alphas(self) -> Callable[[int], float]:
        """``step -> alpha_t`` for this run (module docstring), built once per run."""
        if self.alpha == 0.0:
            return lambda step: 0.0
        schedule = alpha_schedule(
            self.alpha_schedule, self.alpha, max(self.max_iter - self.early_exaggeration_iter, 1),
            final=self.alpha if self.alpha_schedule == "constant" else 0.0)
        start = self.early_exaggeration_iter
        return lambda step: 0.0 if step < start else schedule(step - start)

    def _kl_due(self, step: int) -> bool:
        """Whether ``step``'s KL is read: history, progress check or callbacks."""
        return step % CHECK_EVERY == 0 or (step + 1) % CHECK_EVERY == 0 or (
            step == self.max_iter - 1)

    def _phase(self, step: int) -> tuple[float, float]:
        """``(exaggeration, momentum)`` of ``step``."""
        if step < self.early_exaggeration_iter:
            return self.early_exaggeration, 0.5
        return 1.0, 0.8

    def _callbacks_stop(self, step: int, kl: float, y: Tensor) -> bool:
        if self.callbacks is None or (step + 1) % CHECK_EVERY:
            return False
        callbacks = self.callbacks if isinstance(self.callbacks, list | tuple) else [
            self.callbacks]
        embedding = y.detach().cpu().numpy().astype(np.float64)
        return any([bool(callback(step + 1, kl, embedding)) for callback in callbacks])

    def _converged(self, step: int, kl: float, grad_norm: float) -> bool:
        """Early stopping after early exaggeration (module docstring)."""
        if step < self.early_exaggeration_iter:
            return False
        if grad_norm < self.min_grad_norm:
            self.stop_reason = f"gradient norm {grad_norm:.3g} < min_grad_norm"
            return True
        if (step + 1) % CHECK_EVERY == 0:
            if kl < self._best[0]:
                self._best = (kl, step)
            elif step - self._best[1] > self.n_iter_without_progress:
                self.stop_reason = f"no progress in {self.n_iter_without_progress} steps"
                return True
        return False

    def descend(self, cost: Cost, y: Tensor, n: int) -> tuple[Tensor, int]:
        """The gains-and-momentum descent on the free points ``y`` of ``n`` points; returns
        ``(y, steps taken)``."""
        update, gains = torch.zeros_like(y), torch.ones_like(y)
        alphas = self._alphas()
        step = 0
        for step in tqdm(range(self.max_iter), disable=not self.verbose, desc="embedding"):
            exaggeration, momentum = self._phase(step)
            rate = self.learning_rate
            if rate == "auto":
                rate = max(n / exaggeration / 4.0, 50.0) / self.damping
            self.learning_rate_ = float(rate)
            if step == self.early_exaggeration_iter:
                update, gains = torch.zeros_like(y), torch.ones_like(y)
            kl, grad = cost.gradient(y, exaggeration, value=self._kl_due(step))
            same = (update * grad) >= 0.0
            gains = torch.where(same, gains * 0.8, gains + 0.2).clamp_min_(0.01)
            update = momentum * update - self.learning_rate_ * gains * grad
            if self.max_step_norm is not None:
                norms = update.norm(dim=1, keepdim=True)
                update = update * (self.max_step_norm / norms.clamp_min(self.max_step_norm))
            y = y + update
            grad_norm = float(grad.norm())
            self._record(step, kl, grad_norm, cost, alphas(step))
            if self._converged(step, kl, grad_norm) or self._callbacks_stop(step, kl, y):
                break
        return y, step + 1

    def train_network(self, cost: Cost, network: nn.Module, x: Tensor) -> tuple[Tensor, int]:
        """Adam on ``network``, whose output on ``x`` is the embedding; the cost's gradient is
        pulled back through it. Returns ``(network(x), steps taken)``."""
        rate = 1e-3 if self.learning_rate == "auto" else float(self.learning_rate)
        self.learning_rate_ = rate
        optimiser = torch.optim.Adam(network.parameters(), lr=rate)
        alphas = self._alphas()
        step = 0
        for step in tqdm(range(self.max_iter), disable=not self.verbose, desc="embedding"):
            exaggeration, _ = self._phase(step)
            y = network(x)
            kl, grad = cost.gradient(y.detach(), exaggeration, value=self._kl_due(step))
            optimiser.zero_grad()
            y.backward(grad)
            optimiser.step()
            self._record(step, kl, float(grad.norm()), cost, alphas(step))
            if self._callbacks_stop(step, kl, y):
                break
        with torch.no_grad():
            return network(x), step + 1

    def _record(self, step: int, kl: float, grad_norm: float, cost: Cost, alpha: float) -> None:
        if step % CHECK_EVERY == 0 or step == self.max_iter - 1:
            self.history.append({"iteration": step, "kl": kl, "alpha": alpha})
        if not (math.isfinite(grad_norm) and (math.isfinite(kl) or not self._kl_due(step))):
            if step == 0:
                raise FloatingPointError(
                    "the objective is not finite at the initial embedding (iteration 0): the "
                    "input affinities or init hold values it cannot use; check for duplicate "
                    "or non-finite rows and for a finite init")
            raise FloatingPointError(
                f"the objective diverged at iteration {step} with learning_rate "
                f"{self.learning_rate_:g}; lower learning_rate or max_step_norm")
        cost.teacher_step(alpha)
