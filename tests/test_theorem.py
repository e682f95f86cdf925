"""The paper's convergence argument, checked numerically.

1. Jensen step: ``KL((1 - a) p + a q || q) <= (1 - a) KL(p || q)``.
2. With an inner minimisation that starts at ``q(t-1)`` and never raises the loss,
   ``L(t) <= (1 - alpha) L(t-1)`` at every ``t``.
3. Finite capacity: against the static target the loss has a non-zero floor, yet with
   ``alpha > 0`` the bound of 2 still holds, so ``L(t)`` goes below that floor: the teacher has
   moved onto what the student can represent.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import rel_entr
from sklearn.datasets import load_digits

from rkdo.fullbatch import FreeEmbeddings, FreeLogits, FullBatchRKDO, static_log_prob
from rkdo.functional import kl_rows, log_mix
from rkdo.kernels import Cosine, KNNGraph


def _random_distributions(rows, cols, seed, zeros=False):
    g = torch.Generator().manual_seed(seed)
    logits = 3.0 * torch.randn(rows, cols, generator=g, dtype=torch.float64)
    if zeros:  # some p(j|i) = 0, which Jensen must handle (0 log 0 = 0)
        logits = logits.masked_fill(torch.rand(rows, cols, generator=g) < 0.3, float("-inf"))
        logits[:, 0] = 0.0
    return torch.log_softmax(logits, dim=-1)


@pytest.mark.parametrize("alpha", [0.0, 0.05, 0.3, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("zeros", [False, True])
def test_jensen_step(alpha, zeros):
    log_p = _random_distributions(200, 7, seed=1, zeros=zeros)
    log_q = _random_distributions(200, 7, seed=2)
    lhs = kl_rows(log_mix(log_p, log_q, alpha), log_q)
    rhs = (1 - alpha) * kl_rows(log_p, log_q)
    # independent reference for both KLs, in probability space
    p, q = log_p.exp().numpy(), log_q.exp().numpy()
    mixed = (1 - alpha) * p + alpha * q
    np.testing.assert_allclose(lhs.numpy(), rel_entr(mixed, q).sum(1), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(rhs.numpy(), (1 - alpha) * rel_entr(p, q).sum(1), rtol=1e-9)
    assert bool((lhs <= rhs + 1e-12).all())
    if 0.0 < alpha < 1.0:  # strictly convex in p: strict whenever p != q
        assert bool((lhs < rhs - 1e-9).all())
    else:  # equality at both ends (alpha = 1: both sides are 0)
        torch.testing.assert_close(lhs, rhs, rtol=0, atol=1e-12)


def test_jensen_equality_when_p_equals_q():
    log_p = _random_distributions(50, 9, seed=3)
    for alpha in (0.0, 0.4, 1.0):
        lhs = kl_rows(log_mix(log_p, log_p, alpha), log_p)
        torch.testing.assert_close(lhs, torch.zeros(50, dtype=torch.float64), atol=1e-13,
                                   rtol=0)


def _check_contraction(history, tolerance=1e-10):
    for record in history[1:]:
        a = record["alpha"]
        assert record["before"] <= (1 - a) * record["previous"] + tolerance  # Jensen
        assert record["after"] <= record["before"] + tolerance  # monotone inner step
        assert record["after"] <= (1 - a) * record["previous"] + tolerance  # the theorem


@pytest.mark.parametrize("alpha", [0.1, 0.3, 0.7])
@pytest.mark.parametrize("inner", ["armijo", "adam"])
def test_free_logits_contract_at_every_step(alpha, inner):
    n = 40
    log_p0 = _random_distributions(n, n, seed=4)
    runner = FullBatchRKDO(FreeLogits(n, seed=1), log_p0, alpha=alpha, outer_steps=8,
                           inner=inner, inner_steps=4, lr=0.5 if inner == "adam" else 1.0)
    history = runner.fit().history_
    _check_contraction(history)
    # the inner step does real work (the bound is not met with equality) ...
    assert any(r["after"] < (1 - alpha) * r["previous"] - 1e-6 for r in history[1:])
    # ... and L(t) <= (1 - alpha)^t L(0)
    for r in history[1:]:
        assert r["after"] <= (1 - alpha) ** r["t"] * history[0]["after"] + 1e-10


def test_annealed_alpha_contracts_at_its_own_rate():
    n = 30
    log_p0 = _random_distributions(n, n, seed=5)
    runner = FullBatchRKDO(FreeLogits(n, seed=2), log_p0, alpha=0.8, schedule="cosine",
                           alpha_final=0.05, outer_steps=10, inner="armijo", inner_steps=3)
    history = runner.fit().history_
    _check_contraction(history)
    assert [r["alpha"] for r in history[1:]] == pytest.approx(
        [0.05 + 0.75 * (1 + math.cos(math.pi * t / 10)) / 2 for t in range(1, 11)]
    )


def test_exact_inner_minimisation_reaches_zero():
    n = 20
    log_p0 = _random_distributions(n, n, seed=6)
    history = FullBatchRKDO(FreeLogits(n), log_p0, alpha=0.5, outer_steps=4,
                            inner="exact").fit().history_
    for r in history:
        assert r["after"] == pytest.approx(0.0, abs=1e-10)
    assert history[0]["before"] > 0.5  # q started far from p


@pytest.fixture(scope="module")
def digits_knn():
    """A 5-NN target on 120 digits; 2-D embeddings under a cosine kernel at tau = 0.5."""
    n, k, tau = 120, 5, 0.5
    inputs = torch.tensor(load_digits().data[:n])
    log_p0 = static_log_prob(KNNGraph(k), n, inputs=inputs)
    # cosines lie in [-1, 1], so no q of this family can put more than a factor e^{2/tau} on a
    # neighbour over a non-neighbour: KL(p0 || q) >= log(1 + (n - 1 - k) e^{-2/tau} / k) > 0
    floor_bound = math.log(1 + (n - 1 - k) * math.exp(-2 / tau) / k)
    return log_p0, floor_bound, n, tau


def _circle_student(n, tau):
    init = torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    return FreeEmbeddings(n, 2, kernel=Cosine(tau), init=init)


def test_finite_capacity_has_a_floor_that_the_moving_teacher_goes_below(digits_knn):
    log_p0, floor_bound, n, tau = digits_knn
    static = FullBatchRKDO(_circle_student(n, tau), log_p0, alpha=0.0, outer_steps=8,
                           inner="armijo", inner_steps=20).fit().history_
    losses = [r["after"] for r in static]
    assert all(b <= a + 1e-12 for a, b in zip(losses, losses[1:], strict=False))
    assert min(losses) >= floor_bound  # the floor is real ...
    assert losses[-2] - losses[-1] < 0.01 * losses[-1]  # ... and the loss levels off at it
    floor = losses[-1]

    moving = FullBatchRKDO(_circle_student(n, tau), log_p0, alpha=0.3, outer_steps=8,
                           inner="armijo", inner_steps=20).fit().history_
    _check_contraction(moving)  # finite capacity does not break L(t) <= (1 - a) L(t-1)
    assert moving[-1]["after"] < 0.1 * floor_bound  # far below anything p0 allows
    # the fair yardstick, the static loss L(p0, q(t)), never gets below the floor
    assert min(r["static"] for r in moving) >= floor_bound
    assert moving[-1]["static"] > 0.95 * floor
