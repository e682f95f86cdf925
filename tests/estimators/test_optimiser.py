"""The embedding optimiser against a hand-written loop, and the solver rules, on toy inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rkdo.estimators._optimiser import Optimiser
from rkdo.estimators._solver import choose_solver

CPU = torch.device("cpu")


class Quadratic:
    """``kl = |y - target|^2 / 2`` (gradient ``y - target``, scaled by the exaggeration)."""

    def __init__(self, target: np.ndarray) -> None:
        self.target = torch.from_numpy(target)
        self.alphas: list[float] = []
        self.valued: list[bool] = []

    def gradient(self, y, exaggeration: float = 1.0, *, value: bool = True):
        self.valued.append(value)
        difference = y - self.target
        return 0.5 * float((difference**2).sum()), exaggeration * difference

    def static_kl(self, y) -> float:
        return self.gradient(y)[0]

    def teacher_step(self, alpha: float) -> None:
        self.alphas.append(alpha)


def _reference(y: np.ndarray, target: np.ndarray, steps: int, switch: int, n: int,
               max_step_norm: float) -> np.ndarray:
    """The gains-and-momentum update written out in numpy, one step at a time."""
    update, gains = np.zeros_like(y), np.ones_like(y)
    for step in range(steps):
        exaggeration, momentum = (4.0, 0.5) if step < switch else (1.0, 0.8)
        if step == switch:
            update, gains = np.zeros_like(y), np.ones_like(y)
        grad = exaggeration * (y - target)
        gains = np.maximum(np.where(update * grad >= 0, gains * 0.8, gains + 0.2), 0.01)
        update = momentum * update - max(n / exaggeration / 4, 50) / 10 * gains * grad
        norms = np.linalg.norm(update, axis=1, keepdims=True)
        update = update * max_step_norm / np.maximum(norms, max_step_norm)
        y = y + update
    return y


def test_descent_is_the_documented_update_and_records_the_teacher() -> None:
    rng = np.random.default_rng(0)
    start, target = rng.normal(size=(30, 2)), rng.normal(size=(30, 2))
    optimiser = Optimiser(max_iter=120, early_exaggeration=4.0, early_exaggeration_iter=20,
                          learning_rate="auto", max_step_norm=0.3, min_grad_norm=0.0,
                          n_iter_without_progress=1000, alpha=0.1, alpha_schedule="linear",
                          damping=10.0)
    cost = Quadratic(target)
    y, steps = optimiser.descend(cost, torch.from_numpy(start), n=30)
    np.testing.assert_allclose(y.numpy(), _reference(start, target, 120, 20, 30, 0.3),
                               rtol=1e-12, atol=1e-12)
    assert steps == 120 and optimiser.stop_reason == "max_iter"
    assert optimiser.learning_rate_ == 5.0  # max(30 / 1 / 4, 50) / 10
    assert [h["iteration"] for h in optimiser.history] == [0, 50, 100, 119]
    assert cost.alphas[:20] == [0.0] * 20 and cost.alphas[20] == pytest.approx(0.1)
    assert cost.alphas[-1] == pytest.approx(0.1 * (1 - 99 / 100))
    # the KL is asked for only where it is read: history, progress check, callbacks
    assert [step for step, value in enumerate(cost.valued) if value] == [
        0, 49, 50, 99, 100, 119]


def test_callbacks_stop_every_fifty_steps_and_divergence_is_named() -> None:
    seen = []
    optimiser = Optimiser(max_iter=500, early_exaggeration=1.0, early_exaggeration_iter=0,
                          learning_rate=0.1, max_step_norm=None, min_grad_norm=0.0,
                          n_iter_without_progress=1000, alpha=0.0, alpha_schedule="constant",
                          callbacks=lambda step, kl, y: seen.append(step) or step >= 150)
    _, steps = optimiser.descend(Quadratic(np.zeros((5, 2))), torch.ones(5, 2,
                                                                        dtype=torch.float64), 5)
    assert seen == [50, 100, 150] and steps == 150
    diverging = Optimiser(max_iter=50, early_exaggeration=1.0, early_exaggeration_iter=0,
                          learning_rate=1e200, max_step_norm=None, min_grad_norm=0.0,
                          n_iter_without_progress=10, alpha=0.0, alpha_schedule="constant")
    with pytest.raises(FloatingPointError, match="diverged at iteration .* learning_rate 1e"):
        diverging.descend(Quadratic(np.zeros((5, 2))), torch.ones(5, 2, dtype=torch.float64), 5)


@pytest.mark.parametrize("objective, n, dimensions, solver", [
    ("tsne", 1000, 2, "exact"), ("tsne", 1001, 2, "fft"), ("tsne", 5000, 3, "exact"),
    ("sne", 5000, 2, "exact"), ("infonce", 1000, 2, "exact"), ("infonce", 1001, 2, "sampled"),
    ("neg", 10, 2, "sampled"),
])
def test_auto_picks_the_documented_solver(objective: str, n: int, dimensions: int,
                                          solver: str) -> None:
    assert choose_solver("auto", objective, n, n_components=dimensions, parametric=False,
                         device=CPU) == solver


@pytest.mark.parametrize("method, objective, dimensions, parametric, message", [
    ("fft", "sne", 2, False, "method='fft' supports objective='tsne'"),
    ("sampled", "tsne", 2, False, "method='sampled' is for objective='infonce'"),
    ("exact", "neg", 2, False, "'neg' has no other method"),
    ("sampled", "infonce", 2, True, "free points in 2-D only"),
])
def test_unservable_requests_name_the_way_out(method: str, objective: str, dimensions: int,
                                              parametric: bool, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        choose_solver(method, objective, 100, n_components=dimensions, parametric=parametric,
                      device=CPU)
