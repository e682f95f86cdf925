"""Tests of rkdo.fused: the hand-written backward passes against autograd's numerical Jacobian
(float64 gradcheck) and against dense autograd formulas written here from the equations."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch

from rkdo import functional as fn
from rkdo.fused import fixed_mean_kl, fused_recursive_kl, probabilities
from rkdo.fused_scores import softmax_mean_kl, softmax_recursive_kl

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
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(3, 4, 4, dtype=torch.float64, generator=g).log_softmax(-1)
    logits.requires_grad_()
    (once,) = torch.autograd.grad(fused_recursive_kl(teacher, list(logits), 0.5), logits)
    (thrice,) = torch.autograd.grad(3.0 * fused_recursive_kl(teacher, list(logits), 0.5), logits)
    # entries that cancel to ~1e-17 differ by rounding: an absolute floor far below any term
    torch.testing.assert_close(thrice, 3.0 * once, rtol=1e-14, atol=1e-15)


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


# --- softmax_recursive_kl / softmax_mean_kl: from the scores, gradient formed in forward ------

TAUS = [0.5, 0.48, 0.46, 0.45]


def _scores_case(seed: int, dtype=torch.float64, masked: bool = True):
    """Scores, a mask with an empty row (or None) and a teacher with an empty row that lives
    on the allowed entries."""
    teacher, mask = _masked(6, 7, seed=seed, dtype=dtype)
    mask[4] = False  # an anchor without any allowed candidate
    teacher[4] = -math.inf
    scores = torch.randn(6, 7, dtype=dtype, generator=torch.Generator().manual_seed(seed)) * 2
    return teacher, scores, (mask if masked else None)


@pytest.mark.parametrize("alpha", [0.0, 0.4, 1.0])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("rows", [None, 1, 4])
def test_softmax_recursive_gradcheck(alpha: float, masked: bool, rows) -> None:
    """The true derivative in float64, row blocks of 1, 4 (a partial last block) and all."""
    teacher, scores, mask = _scores_case(6, masked=masked)
    scores.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda s: softmax_recursive_kl(teacher, s, TAUS, alpha, mask=mask, block_rows=rows),
        (scores,))


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_softmax_recursive_matches_log_prob_path(alpha, detach, masked, dtype) -> None:
    """Value and gradient equal fused_recursive_kl over log_normalize(s / tau_u, mask)."""
    teacher, scores, mask = _scores_case(7, dtype=dtype, masked=masked)
    scores.requires_grad_()
    students = [fn.log_normalize(scores / tau, mask) for tau in TAUS]
    expected = fused_recursive_kl(teacher, students, alpha, detach_teacher=detach)
    (grad_expected,) = torch.autograd.grad(expected, scores)
    got = softmax_recursive_kl(teacher, scores, TAUS, alpha, mask=mask, detach_teacher=detach,
                               block_rows=4)
    (grad_got,) = torch.autograd.grad(got, scores)
    tol = {"rtol": 1e-12, "atol": 1e-14} if dtype == torch.float64 else {"rtol": 1e-5,
                                                                         "atol": 1e-6}
    torch.testing.assert_close(got, expected, **tol)
    torch.testing.assert_close(grad_got, grad_expected, **tol)
    if mask is not None:
        assert (grad_got[~mask] == 0).all()


@pytest.mark.parametrize("masked", [False, True])
def test_softmax_mean_kl_is_icon(masked: bool) -> None:
    teacher, scores, mask = _scores_case(8, masked=masked)
    scores.requires_grad_()
    expected = fixed_mean_kl(teacher, fn.log_normalize(scores / 0.5, mask))
    (grad_expected,) = torch.autograd.grad(expected, scores)
    got = softmax_mean_kl(teacher, scores, 0.5, mask=mask, block_rows=2)
    (grad_got,) = torch.autograd.grad(got, scores)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(grad_got, grad_expected, rtol=1e-12, atol=1e-14)
    assert torch.autograd.gradcheck(lambda s: softmax_mean_kl(teacher, s, 0.5, mask=mask),
                                    (scores,))


def test_softmax_kl_teacher_mass_on_masked_entries() -> None:
    """An infinite KL (teacher mass where the student has none) is a huge finite number and
    the gradient is the log-prob path's (the masked entries' part is dropped)."""
    _, scores, mask = _scores_case(9)
    teacher = torch.log_softmax(torch.randn(6, 7, dtype=torch.float64), dim=-1)
    scores.requires_grad_()
    for alpha in (0.0, 0.5):
        got = softmax_recursive_kl(teacher, scores, TAUS, alpha, mask=mask)
        assert torch.isfinite(got) and got > 1e100
        students = [fn.log_normalize(scores / tau, mask) for tau in TAUS]
        expected = fused_recursive_kl(teacher, students, alpha)
        torch.testing.assert_close(torch.autograd.grad(got, scores)[0],
                                   torch.autograd.grad(expected, scores)[0],
                                   rtol=1e-12, atol=1e-14)


def test_softmax_kl_without_grad_and_upstream_scale() -> None:
    teacher, scores, mask = _scores_case(10)
    with torch.no_grad():
        plain = softmax_recursive_kl(teacher, scores, TAUS, 0.5, mask=mask)
    scores.requires_grad_()
    value = softmax_recursive_kl(teacher, scores, TAUS, 0.5, mask=mask)
    assert value.item() == pytest.approx(plain.item(), rel=1e-15)
    (once,) = torch.autograd.grad(value, scores, retain_graph=True)
    (thrice,) = torch.autograd.grad(3.0 * value, scores)
    torch.testing.assert_close(thrice, 3.0 * once, rtol=1e-14, atol=0.0)


def test_softmax_kl_on_meta_and_shape_errors(monkeypatch) -> None:
    """No value is read (no host sync): it runs on ``meta`` (which has no autocast state)."""
    monkeypatch.setattr(torch, "autocast", lambda *args, **kwargs: contextlib.nullcontext())
    scores = torch.empty(5, 6, device="meta", requires_grad=True)
    teacher = torch.empty(5, 6, device="meta")
    value = softmax_recursive_kl(teacher, scores, TAUS, 0.5, block_rows=2)
    value.backward()
    assert value.device.type == "meta" and scores.grad.shape == (5, 6)
    with pytest.raises(ValueError, match="one \\(B, N\\) shape"):
        softmax_recursive_kl(torch.zeros(2, 3), torch.zeros(2, 4), TAUS, 0.5)
    with pytest.raises(ValueError, match="tau_0..tau_K"):
        softmax_recursive_kl(torch.zeros(2, 3), torch.zeros(2, 3), [0.5], 0.5)


# --- depth: the scaled mixtures stay in range at any depth (issue 19, item 4) ----------------

DEEP = [(18, 0.99), (36, 0.9), (150, 0.5), (1200, 0.5), (40, 1e-3)]


@pytest.mark.parametrize(("depth", "alpha"), DEEP)
@pytest.mark.parametrize("masked", [False, True])
def test_softmax_recursive_at_depth_matches_log_prob_path(depth: int, alpha: float,
                                                          masked: bool) -> None:
    """float64 value and gradient equal the log-prob path (which mixes probabilities directly)
    where the scaled mixtures overflowed: inf at depth 18 / alpha 0.99, NaN at 36 / 0.9 and
    150 / 0.5, ZeroDivisionError at 1200 / 0.5."""
    teacher, scores, mask = _scores_case(11, masked=masked)
    scores.requires_grad_()
    taus = fn.temperature_schedule(0.5, 0.1, depth)
    students = [fn.log_normalize(scores / tau, mask) for tau in taus]
    expected = fused_recursive_kl(teacher, students, alpha)
    (grad_expected,) = torch.autograd.grad(expected, scores)
    got = softmax_recursive_kl(teacher, scores, taus, alpha, mask=mask, block_rows=4)
    (grad_got,) = torch.autograd.grad(got, scores)
    assert torch.isfinite(got)
    torch.testing.assert_close(got, expected, rtol=1e-11, atol=1e-13)
    torch.testing.assert_close(grad_got, grad_expected, rtol=1e-10, atol=1e-13 * depth)


def test_softmax_recursive_float32_at_depth_15_alpha_099() -> None:
    """float32 against float64 at depth 15, alpha 0.99, where the value was 2% off (the
    mixtures' scale (1-a)^t entered the value and gradient as a large row constant)."""
    g = torch.Generator().manual_seed(12)
    scores64 = torch.randn(128, 128, generator=g, dtype=torch.float64).tanh()
    teacher = fn.log_normalize(torch.zeros_like(scores64), torch.eye(128, dtype=torch.bool))
    taus = fn.temperature_schedule(0.5, 0.1, 15)
    results = []
    for dtype in (torch.float64, torch.float32):
        scores = scores64.to(dtype).requires_grad_()
        value = softmax_recursive_kl(teacher.to(dtype), scores, taus, 0.99)
        results.append((value.double(), torch.autograd.grad(value, scores)[0].double()))
    (value64, grad64), (value32, grad32) = results
    assert abs(value32 - value64) / value64 < 1e-3
    assert (grad32 - grad64).norm() / grad64.norm() < 1e-4
