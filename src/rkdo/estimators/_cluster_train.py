"""The optimisation loop of kernel clustering: Adam on minibatches, an EMA target, early stop.

Each epoch draws a fresh permutation of the ``n`` points and takes one Adam step per minibatch
of anchors, with a cosine learning-rate decay over ``max_iter`` epochs,

    lr(s) = lr_0 (1 + cos(pi s / S)) / 2,      S = max_iter * ceil(n / batch),

then moves the target's parameters towards the model's, ``theta' <- m theta' + (1 - m) theta``
with ``m = ema^(1 / steps)``, so that ``ema`` is the momentum per epoch whatever the number of
minibatches (``ema = 0``: the model is its own target). Every ``check_every`` epochs the hard
labels of the model (not of the slower target) are compared with the last check's; training
stops once the fraction that changed is at most ``tol``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

__all__ = ["optimise"]

_CHECK_STEPS = 10  # steps at least between two convergence checks (small n: many epochs)


def _follow(target: nn.Module, model: nn.Module, ema: float) -> None:
    with torch.no_grad():
        for kept, live in zip(target.parameters(), model.parameters(), strict=True):
            kept.lerp_(live, 1.0 - ema)


def optimise(model: nn.Module, target: nn.Module, loss_of: Callable[[Tensor], Tensor],
             labels_of: Callable[[], Tensor], *, n: int, batch: int, max_iter: int,
             learning_rate: float, ema: float, tol: float, generator: torch.Generator,
             verbose: bool = False) -> tuple[list[float], int]:
    """Train ``model`` on ``loss_of(anchors)``; ``labels_of()`` gives the model's hard labels.

    Returns the mean minibatch loss of each epoch and the number of epochs run.
    """
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    steps = math.ceil(n / batch)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: 0.5 * (1.0 + math.cos(math.pi * s / (max_iter * steps))))
    check_every = math.ceil(_CHECK_STEPS / steps)
    momentum = ema ** (1.0 / steps)
    curve: list[float] = []
    labels = None
    epochs = 0
    for epochs in tqdm(range(1, max_iter + 1), disable=not verbose, desc="clustering"):
        order = torch.randperm(n, generator=generator)
        # summed on the loss's device in float64 (what float() would give, without a device
        # sync each step: one per epoch)
        running = None
        for start in range(0, n, batch):
            anchors = order[start:start + batch]
            loss = loss_of(anchors)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            if ema > 0.0:
                _follow(target, model, momentum)
            term = loss.detach().double() * len(anchors)
            running = term if running is None else running + term
        curve.append(float(running) / n)
        if not math.isfinite(curve[-1]):
            raise FloatingPointError(f"the clustering loss diverged at epoch {epochs}; "
                                     "lower learning_rate")
        if epochs % check_every and epochs < max_iter:
            continue
        current = labels_of()
        changed = 1.0 if labels is None else float((current != labels).float().mean())
        labels = current
        if changed <= tol:
            break
    return curve, epochs
