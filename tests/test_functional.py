"""Tests of rkdo.functional against independent float64 re-derivations (numpy / dense formulas)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from rkdo import functional as fn

torch.set_num_threads(1)


def _rand_log_probs(rows: int, cols: int, seed: int, zero_frac: float = 0.0) -> np.ndarray:
    """Random row-stochastic matrix (some exact zeros) as log-probabilities, float64."""
    rng = np.random.default_rng(seed)
    weights = rng.gamma(0.7, size=(rows, cols))
    if zero_frac:
        weights[rng.random((rows, cols)) < zero_frac] = 0.0
        weights[:, 0] += 0.1  # every row keeps some mass
    probs = weights / weights.sum(1, keepdims=True)
    with np.errstate(divide="ignore"):
        return np.log(probs)


def _kl_loop(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p_i || q_i) for each row by an explicit loop, 0 log 0 = 0."""
    out = np.zeros(p.shape[0])
    for i in range(p.shape[0]):
        for j in range(p.shape[1]):
            if p[i, j] > 0:
                out[i] += p[i, j] * math.log(p[i, j] / q[i, j])
    return out


# ---------------------------------------------------------------------------------- log_normalize


def test_log_normalize_matches_masked_softmax_loop() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(5, 7)) * 3
    mask = rng.random((5, 7)) > 0.3
    mask[:, 0] = True
    mask[3] = False  # a row with no allowed candidate
    got = fn.log_normalize(torch.tensor(scores), torch.tensor(mask)).numpy()
    for i in range(5):
        allowed = [j for j in range(7) if mask[i, j]]
        norm = sum(math.exp(scores[i, j]) for j in allowed)
        for j in range(7):
            expected = math.log(math.exp(scores[i, j]) / norm) if mask[i, j] else -math.inf
            assert got[i, j] == pytest.approx(expected, abs=1e-12) or (
                expected == -math.inf and got[i, j] == -math.inf
            )
    assert np.all(np.isneginf(got[3]))
    # unmasked: plain log-softmax
    plain = fn.log_normalize(torch.tensor(scores)).numpy()
    np.testing.assert_allclose(np.exp(plain).sum(1), 1.0, atol=1e-12)


def test_log_normalize_masked_entries_have_zero_finite_gradient() -> None:
    scores = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(4, 6) > 0.4
    mask[:, 1] = True
    mask[2] = False
    out = fn.log_normalize(scores, mask)
    weights = torch.randn(4, 6, dtype=torch.float64)
    out.masked_fill(torch.isneginf(out), 0.0).mul(weights).sum().backward()
    assert torch.isfinite(scores.grad).all()
    assert (scores.grad[~mask] == 0).all()


# ------------------------------------------------------------------------------ log_mix / debias


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.5, 0.93, 1.0])
def test_log_mix_is_mixture_of_probabilities(alpha: float) -> None:
    log_p = _rand_log_probs(6, 9, 1, zero_frac=0.3)
    log_q = _rand_log_probs(6, 9, 2, zero_frac=0.3)
    got = fn.log_mix(torch.tensor(log_p), torch.tensor(log_q), alpha).numpy()
    expected = (1 - alpha) * np.exp(log_p) + alpha * np.exp(log_q)
    np.testing.assert_allclose(np.exp(got), expected, atol=1e-14)
    np.testing.assert_allclose(np.exp(got).sum(1), 1.0, atol=1e-12)
    assert np.array_equal(np.isneginf(got), expected == 0)


def test_log_mix_alpha_zero_leaves_p_unchanged_and_alpha_one_gives_q() -> None:
    log_p = torch.tensor(_rand_log_probs(3, 4, 3))
    log_q = torch.tensor(_rand_log_probs(3, 4, 4))
    assert torch.equal(fn.log_mix(log_p, log_q, 0.0), log_p)
    assert torch.equal(fn.log_mix(log_p, log_q, 1.0), log_q)


def test_log_mix_gradient_finite_where_both_are_minus_inf() -> None:
    log_p = torch.tensor(_rand_log_probs(4, 5, 5, zero_frac=0.5), requires_grad=True)
    log_q = torch.tensor(_rand_log_probs(4, 5, 6, zero_frac=0.5), requires_grad=True)
    log_q_masked = log_q.masked_fill(torch.isneginf(log_p.detach()), float("-inf"))
    out = fn.log_mix(log_p, log_q_masked, 0.3)
    out.masked_fill(torch.isneginf(out), 0.0).sum().backward()
    assert torch.isfinite(log_p.grad).all() and torch.isfinite(log_q.grad).all()


def test_log_mix_gradcheck() -> None:
    log_p = torch.tensor(_rand_log_probs(3, 4, 7), requires_grad=True)
    log_q = torch.tensor(_rand_log_probs(3, 4, 8), requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: fn.log_mix(a, b, 0.37), (log_p, log_q))


@pytest.mark.parametrize("amount", [0.0, 0.2, 0.75])
def test_log_debias_mixes_probabilities_with_uniform_over_allowed(amount: float) -> None:
    rng = np.random.default_rng(9)
    mask = rng.random((5, 8)) > 0.3
    mask[:, 2] = True
    scores = rng.normal(size=(5, 8))
    log_p = fn.log_normalize(torch.tensor(scores), torch.tensor(mask))
    got = np.exp(fn.log_debias(log_p, amount, torch.tensor(mask)).numpy())
    p = np.exp(log_p.numpy())
    expected = (1 - amount) * p + amount * mask / mask.sum(1, keepdims=True)
    np.testing.assert_allclose(got, expected, atol=1e-14)
    # no mask: uniform over all N columns; and NOT a mix of logs
    got_nomask = np.exp(fn.log_debias(log_p.clamp_min(-30), amount).numpy())
    p_nomask = np.exp(log_p.clamp_min(-30).numpy())
    np.testing.assert_allclose(got_nomask, (1 - amount) * p_nomask + amount / 8, atol=1e-14)
    if amount:
        log_mixed = (1 - amount) * log_p.clamp_min(-30).numpy() + amount * math.log(1 / 8)
        assert not np.allclose(got_nomask, np.exp(log_mixed), atol=1e-3)


def test_log_debias_zero_is_identity() -> None:
    log_p = torch.tensor(_rand_log_probs(3, 5, 10, zero_frac=0.4))
    assert torch.equal(fn.log_debias(log_p, 0.0), log_p)


# ------------------------------------------------------------------------------------------ KL


def test_kl_rows_matches_loop_with_zero_entries() -> None:
    log_p = _rand_log_probs(7, 6, 11, zero_frac=0.4)
    log_q = _rand_log_probs(7, 6, 12)
    got = fn.kl_rows(torch.tensor(log_p), torch.tensor(log_q)).numpy()
    np.testing.assert_allclose(got, _kl_loop(np.exp(log_p), np.exp(log_q)), rtol=1e-12)
    np.testing.assert_allclose(
        got, scipy.stats.entropy(np.exp(log_p), np.exp(log_q), axis=1), rtol=1e-10
    )


def test_kl_nonnegative_and_zero_iff_equal() -> None:
    for seed in range(5):
        log_p = torch.tensor(_rand_log_probs(10, 12, seed, zero_frac=0.3))
        log_q = torch.tensor(_rand_log_probs(10, 12, seed + 100))
        assert (fn.kl_rows(log_p, log_q) >= 0).all()
        assert fn.kl_rows(log_p, log_p).abs().max() == 0.0
        assert fn.mean_kl(log_p, log_p) == 0.0
        assert fn.mean_kl(log_p, log_q) > 1e-3


def test_kl_zero_p_entries_ignore_minus_inf_q() -> None:
    # p_ij = 0 and q_ij = 0: contributes 0, and no NaN in value or gradient
    log_p = torch.tensor([[0.0, -math.inf, -math.inf]], dtype=torch.float64, requires_grad=True)
    log_q = torch.tensor([[-0.1, -math.inf, math.log(1 - math.exp(-0.1))]], dtype=torch.float64,
                         requires_grad=True)
    value = fn.kl_rows(log_p, log_q)
    assert value.item() == pytest.approx(0.1, abs=1e-12)
    value.sum().backward()
    assert torch.isfinite(log_p.grad).all() and torch.isfinite(log_q.grad).all()


def test_kl_gradcheck() -> None:
    log_p = torch.tensor(_rand_log_probs(4, 5, 13), requires_grad=True)
    log_q = torch.tensor(_rand_log_probs(4, 5, 14), requires_grad=True)
    assert torch.autograd.gradcheck(fn.mean_kl, (log_p, log_q))


def test_mean_kl_leaves_out_rows_without_mass() -> None:
    log_p = _rand_log_probs(5, 4, 15)
    log_p[1] = -np.inf
    log_p[3] = -np.inf
    log_q = _rand_log_probs(5, 4, 16)
    per_row = _kl_loop(np.exp(log_p), np.exp(log_q))
    got = fn.mean_kl(torch.tensor(log_p), torch.tensor(log_q)).item()
    assert got == pytest.approx(per_row[[0, 2, 4]].mean(), rel=1e-12)


def test_entropy_and_perplexity_match_scipy() -> None:
    log_p = _rand_log_probs(6, 9, 17, zero_frac=0.3)
    expected = scipy.stats.entropy(np.exp(log_p), axis=1)
    np.testing.assert_allclose(fn.entropy_rows(torch.tensor(log_p)).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(
        fn.perplexity_rows(torch.tensor(log_p)).numpy(), np.exp(expected), rtol=1e-12
    )
    uniform = torch.full((2, 5), -math.log(5), dtype=torch.float64)
    np.testing.assert_allclose(fn.perplexity_rows(uniform).numpy(), 5.0, rtol=1e-12)


# ------------------------------------------------------------------------------- the recursion


def _recursive_loop(p0: np.ndarray, qs: list[np.ndarray], alpha: float) -> float:
    p = p0.copy()
    total = 0.0
    for t in range(1, len(qs)):
        p = (1 - alpha) * p + alpha * qs[t - 1]
        total += _kl_loop(p, qs[t]).mean()
    return total


@pytest.mark.parametrize("alpha", [0.0, 0.5, 0.8, 1.0])
@pytest.mark.parametrize("depth", [1, 3])
def test_recursive_kl_matches_loop(alpha: float, depth: int) -> None:
    p0 = _rand_log_probs(5, 5, 20, zero_frac=0.5)
    students = [_rand_log_probs(5, 5, 30 + t) for t in range(depth + 1)]
    got = fn.recursive_kl(torch.tensor(p0), [torch.tensor(s) for s in students], alpha).item()
    expected = _recursive_loop(np.exp(p0), [np.exp(s) for s in students], alpha)
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-14)


def test_recursive_kl_gradients_through_and_without_teacher() -> None:
    """Gradient flows through p(t) by default; detach_teacher treats q(t-1) in p(t) as constant."""
    alpha, depth = 0.5, 3
    logits = torch.randn(depth + 1, 4, 5, dtype=torch.float64, requires_grad=True)
    p0 = torch.eye(4, 5, dtype=torch.float64)

    def dense(logits: torch.Tensor, detach: bool) -> torch.Tensor:
        qs = torch.softmax(logits, dim=-1)
        p, total = p0, 0.0
        for t in range(1, depth + 1):
            prev = qs[t - 1].detach() if detach else qs[t - 1]
            p = (1 - alpha) * p + alpha * prev
            terms = torch.where(p > 0, p * (torch.log(p) - torch.log(qs[t])), 0.0)
            total = total + terms.sum(-1).mean()
        return total

    for detach in (False, True):
        (expected,) = torch.autograd.grad(dense(logits, detach), logits)
        value = fn.recursive_kl(
            torch.log(p0), list(torch.log_softmax(logits, dim=-1)), alpha, detach_teacher=detach
        )
        (got,) = torch.autograd.grad(value, logits)
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
        assert value.item() == pytest.approx(dense(logits, detach).item(), rel=1e-12)
    # the two modes really differ (q(0) gets gradient only through the teacher)
    g_through = torch.autograd.grad(
        fn.recursive_kl(torch.log(p0), list(torch.log_softmax(logits, -1)), alpha), logits)[0]
    g_detached = torch.autograd.grad(
        fn.recursive_kl(torch.log(p0), list(torch.log_softmax(logits, -1)), alpha,
                        detach_teacher=True), logits)[0]
    assert g_detached[0].abs().max() == 0.0
    assert g_through[0].abs().max() > 1e-3


def test_recursive_kl_gradcheck() -> None:
    logits = torch.randn(3, 3, 4, dtype=torch.float64, requires_grad=True)
    p0 = torch.log(torch.eye(3, 4, dtype=torch.float64))

    def f(x: torch.Tensor) -> torch.Tensor:
        return fn.recursive_kl(p0, list(torch.log_softmax(x, -1)), 0.4)

    assert torch.autograd.gradcheck(f, (logits,))


@pytest.mark.parametrize("alpha", [0.2, 0.5, 0.9])
def test_fixed_student_recursion_closed_form_and_jensen_bound(alpha: float) -> None:
    """beta = 0 (all q(t) equal): p(t) = (1-a)^t p0 + (1-(1-a)^t) q and
    KL(p(t) || q) <= (1-a)^t KL(p0 || q) by convexity (Jensen)."""
    depth = 4
    p0 = _rand_log_probs(6, 6, 40, zero_frac=0.5)
    q = _rand_log_probs(6, 6, 41)
    P0, Q = np.exp(p0), np.exp(q)
    kl0 = _kl_loop(P0, Q).mean()
    terms = []
    for t in range(1, depth + 1):
        pt = (1 - alpha) ** t * P0 + (1 - (1 - alpha) ** t) * Q
        terms.append(_kl_loop(pt, Q).mean())
        assert terms[-1] <= (1 - alpha) ** t * kl0 + 1e-12
    for k in (1, 3, depth):
        got = fn.recursive_kl(torch.tensor(p0), [torch.tensor(q)] * (k + 1), alpha).item()
        assert got == pytest.approx(sum(terms[:k]), rel=1e-12)
    depth1 = fn.recursive_kl(torch.tensor(p0), [torch.tensor(q)] * 2, alpha).item()
    depth3 = fn.recursive_kl(torch.tensor(p0), [torch.tensor(q)] * 4, alpha).item()
    assert depth1 < depth3 <= depth1 * (1 + (1 - alpha) + (1 - alpha) ** 2) + 1e-12


def test_recursive_kl_needs_two_students() -> None:
    with pytest.raises(ValueError, match="K >= 1"):
        fn.recursive_kl(torch.zeros(2, 2), [torch.zeros(2, 2)], 0.5)


def _masked_case(seed: int, rows: int = 6, cols: int = 7, depth: int = 3):
    """Students that are -inf outside a mask, a teacher with one empty row and zeros inside."""
    rng = np.random.default_rng(seed)
    mask = rng.random((rows, cols)) > 0.3
    mask[:, 0] = True
    teacher = np.where(mask & (rng.random((rows, cols)) > 0.5), rng.random((rows, cols)), 0.0)
    teacher[:, 0] += 0.5
    teacher[2] = 0.0  # an anchor without any target
    teacher /= np.maximum(teacher.sum(1, keepdims=True), 1e-300)
    scores = rng.normal(size=(depth + 1, rows, cols)) * 3
    students = np.where(mask, np.exp(scores), 0.0)
    students /= students.sum(2, keepdims=True)
    return mask, teacher, students


def _recursive_loop_rows_with_mass(p0: np.ndarray, qs: np.ndarray, alpha: float) -> float:
    p, total = p0.copy(), 0.0
    for t in range(1, len(qs)):
        p = (1 - alpha) * p + alpha * qs[t - 1]
        has_mass = p.sum(1) > 0
        total += _kl_loop(p[has_mass], qs[t][has_mass]).mean()
    return total


@pytest.mark.parametrize("alpha", [0.0, 0.4, 1.0])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_recursive_kl_masked_students_and_empty_teacher_rows(alpha: float, dtype) -> None:
    mask, teacher, students = _masked_case(50)
    with np.errstate(divide="ignore"):
        log_teacher = torch.tensor(np.log(teacher), dtype=dtype)
        log_students = torch.tensor(np.log(students), dtype=dtype, requires_grad=True)
    got = fn.recursive_kl(log_teacher, list(log_students), alpha)
    expected = _recursive_loop_rows_with_mass(teacher, students, alpha)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert got.item() == pytest.approx(expected, rel=tol)
    got.backward()
    assert torch.isfinite(log_students.grad).all()
    assert (log_students.grad[:, ~torch.tensor(mask)] == 0).all()


def test_recursive_kl_finite_gradients_at_extreme_logits_float32() -> None:
    """Students at temperature ~0.02 (log-probabilities down to about -100) with masked
    self-pairs: value and gradient finite in both gradient modes."""
    torch.manual_seed(51)
    z = torch.nn.functional.normalize(torch.randn(16, 8), dim=1).requires_grad_()
    mask = ~torch.eye(16, dtype=torch.bool)
    students = [fn.log_normalize(z @ z.T / tau, mask) for tau in (0.02, 0.019, 0.018)]
    positives = torch.roll(torch.eye(16, dtype=torch.bool), 1, 1)
    teacher = fn.log_normalize(torch.zeros(16, 16), positives)
    for detach in (False, True):
        value = fn.recursive_kl(teacher, students, 0.5, detach_teacher=detach)
        (grad,) = torch.autograd.grad(value, z, retain_graph=True)
        assert torch.isfinite(value) and torch.isfinite(grad).all()
