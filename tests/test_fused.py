"""Tests of rkdo.fused: the hand-written backward passes against autograd's numerical Jacobian
(float64 gradcheck) and against dense autograd formulas written here from the equations."""

from __future__ import annotations

import math

import pytest
import torch

from rkdo import functional as fn
from rkdo.fused import fixed_mean_kl, fused_recursive_kl, probabilities

torch.set_num_threads(1)


def _masked(rows: int, cols: int, seed: int, dtype=torch.float64):
    """A teacher with zeros and one empty row, a mask, and free (unnormalised) student logits."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(rows, cols, generator=g) > 0.3
    mask[:, 0] = True
    weights = torch.rand(rows, cols, generator=g, dtype=dtype) * (torch.rand(rows, cols,
                                                                             generator=g) > 0.4)
    weights = torch.where(mask, weights, 0.0)
    weights[:, 0] += 0.3
    weights[1] = 0.0  # an anchor without any target
    teacher = torch.log(weights / weights.sum(1, keepdim=True).clamp_min(1e-30))
    return teacher, mask


def _dense_recursion(teacher, students, alpha, detach):
    """sum_t 1/n_t sum_ij p_t (log p_t - l_t), with p_t mixed in probability space by autograd."""
    p, total = teacher.exp(), 0.0
    for t in range(1, len(students)):
        previous = students[t - 1].exp()
        p = (1 - alpha) * p + alpha * (previous.detach() if detach else previous)
        safe_p = torch.where(p > 0, p, 1.0)
        safe_l = torch.where(p > 0, students[t], 0.0)
        terms = torch.where(p > 0, p * (torch.log(safe_p) - safe_l), 0.0)
        rows = (p.detach().sum(-1) > 0).sum().clamp_min(1)
        total = total + terms.sum() / rows
    return total


@pytest.mark.parametrize("alpha", [0.0, 0.4, 1.0])
def test_recursive_gradcheck_free_logits_with_masks(alpha: float) -> None:
    """The true derivative (gradient through the teacher); detach_teacher is a different
    gradient by design and is checked against the dense formula below."""
    teacher, mask = _masked(4, 5, seed=1)
    logits = torch.randn(4, 4, 5, dtype=torch.float64)
    students = torch.where(mask, logits, -math.inf).requires_grad_()

    def f(x: torch.Tensor) -> torch.Tensor:
        return fused_recursive_kl(teacher, list(x), alpha)

    assert torch.autograd.gradcheck(f, (students,))


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_recursive_matches_dense_autograd(alpha: float, detach: bool, dtype) -> None:
    teacher, mask = _masked(6, 7, seed=2, dtype=dtype)
    scores = torch.randn(4, 6, 7, dtype=dtype) * 3
    logits = fn.log_normalize(scores, mask).detach().requires_grad_()
    got = fused_recursive_kl(teacher, list(logits), alpha, detach_teacher=detach)
    (grad_got,) = torch.autograd.grad(got, logits)
    expected = _dense_recursion(teacher, list(logits), alpha, detach)
    (grad_expected,) = torch.autograd.grad(expected, logits)
    tol = {"rtol": 1e-12, "atol": 1e-14} if dtype == torch.float64 else {"rtol": 1e-5,
                                                                         "atol": 1e-6}
    torch.testing.assert_close(got, expected, **tol)
    torch.testing.assert_close(grad_got, grad_expected, **tol)
    assert (grad_got[:, ~mask] == 0).all()


def test_fixed_kl_gradcheck_and_value() -> None:
    teacher, mask = _masked(5, 6, seed=3)
    logits = torch.where(mask, torch.randn(5, 6, dtype=torch.float64), -math.inf)
    logits.requires_grad_()
    assert torch.autograd.gradcheck(lambda x: fixed_mean_kl(teacher, x), (logits,))
    p = teacher.exp()
    terms = torch.where(p > 0, p * (teacher - logits.detach()), 0.0)
    expected = terms.sum() / (p.sum(-1) > 0).sum()
    assert fixed_mean_kl(teacher, logits).item() == pytest.approx(expected.item(), rel=1e-14)


def test_gradient_through_upstream_scale() -> None:
    """backward multiplies by the incoming gradient (a loss weight of 3 triples everything)."""
    teacher, _ = _masked(4, 4, seed=4)
    logits = torch.randn(3, 4, 4, dtype=torch.float64).log_softmax(-1).requires_grad_()
    (once,) = torch.autograd.grad(fused_recursive_kl(teacher, list(logits), 0.5), logits)
    (thrice,) = torch.autograd.grad(3.0 * fused_recursive_kl(teacher, list(logits), 0.5), logits)
    torch.testing.assert_close(thrice, 3.0 * once, rtol=1e-14, atol=0.0)


def test_shapes_must_agree() -> None:
    with pytest.raises(ValueError, match="one shape"):
        fixed_mean_kl(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="one shape"):
        fused_recursive_kl(torch.zeros(2, 3), [torch.zeros(2, 3), torch.zeros(3, 3)], 0.5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_probabilities_exact_zeros_and_values(dtype) -> None:
    log_p = torch.tensor([[0.0, -math.inf, -1.0, -30.0, -1e4]], dtype=dtype)
    got = probabilities(log_p)
    assert got[0, 1] == 0.0 and got[0, 4] == 0.0
    torch.testing.assert_close(got[0, [0, 2, 3]], log_p[0, [0, 2, 3]].exp(), rtol=1e-15,
                               atol=1e-30)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_no_grad_log_normalize_equals_log_softmax_path(dtype) -> None:
    g = torch.Generator().manual_seed(5)
    scores = torch.randn(6, 9, generator=g, dtype=dtype) * 20
    mask = torch.rand(6, 9, generator=g) > 0.5
    mask[:, 0] = True
    mask[4] = False  # a row without allowed entries
    fast = fn.log_normalize(scores, mask)
    slow = fn.log_normalize(scores.clone().requires_grad_(), mask).detach()
    assert torch.equal(torch.isneginf(fast), torch.isneginf(slow))
    assert torch.isneginf(fast[4]).all()
    finite = ~torch.isneginf(slow)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(fast[finite], slow[finite], rtol=tol, atol=tol)
