"""Tests of IConLoss and RKDOLoss against slow float64 re-derivations of the reference formulas.

The references below are written from MISSION.md, not from rkdo's code:

- I-Con baseline: p = 0.8 I + 0.2 / B, q = softmax(z1 z2^T / 0.5), loss = mean_i KL(p_i || q_i).
- RKDO (notebooks): p0 = I, q0 = softmax(S / tau); for t = 1..K: p = (1-a) p + a q(t-1),
  q(t) = softmax(S / (tau (1 - 0.1 t / K))), loss += mean_i KL(p_i || q(t)_i).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rkdo import IConLoss, RKDOLoss
from rkdo.kernels import Augmentation, CoMembership, Cosine, GaussianInput, SameLabel, StudentT
from rkdo.neighbourhood import build_neighbourhood

torch.set_num_threads(1)


def _views(batch: int, dim: int, seed: int, dtype=torch.float64, grad: bool = False):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(batch, dim, generator=g, dtype=dtype)
    z2 = torch.randn(batch, dim, generator=g, dtype=dtype)
    return z1.requires_grad_(grad), z2.requires_grad_(grad)


def _kl_mean(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """mean_i sum_j p_ij log(p_ij / q_ij), 0 log 0 = 0 (differentiable dense formula)."""
    # where p = 0 put finite stand-ins for both logs (q may be 0 there: masked self-pairs)
    safe_p = torch.where(p > 0, p, torch.ones_like(p))
    safe_q = torch.where(p > 0, q, torch.ones_like(q))
    terms = torch.where(p > 0, p * (torch.log(safe_p) - torch.log(safe_q)), torch.zeros_like(p))
    return terms.sum(1).mean()


def _softmax_dense(logits: torch.Tensor) -> torch.Tensor:
    w = torch.exp(logits)
    return w / w.sum(1, keepdim=True)


def icon_reference(z1, z2, tau: float = 0.5, debias: float = 0.2) -> torch.Tensor:
    z1, z2 = z1 / z1.norm(dim=1, keepdim=True), z2 / z2.norm(dim=1, keepdim=True)
    batch = z1.shape[0]
    p = (1 - debias) * torch.eye(batch, dtype=z1.dtype) + debias / batch
    q = _softmax_dense(z1 @ z2.T / tau)
    return _kl_mean(p, q)


def rkdo_reference(z1, z2, alpha=0.5, tau=0.5, beta=0.1, depth=3, detach=False, p0=None):
    z1, z2 = z1 / z1.norm(dim=1, keepdim=True), z2 / z2.norm(dim=1, keepdim=True)
    sim = z1 @ z2.T
    p = torch.eye(sim.shape[0], dtype=sim.dtype) if p0 is None else p0
    q = _softmax_dense(sim / tau)
    loss = 0.0
    for t in range(1, depth + 1):
        p = (1 - alpha) * p + alpha * (q.detach() if detach else q)
        q = _softmax_dense(sim / (tau * (1 - beta * t / depth)))
        loss = loss + _kl_mean(p, q)
    return loss


def _grads(value: torch.Tensor, inputs) -> list[torch.Tensor]:
    return list(torch.autograd.grad(value, inputs, retain_graph=True))


def _assert_same_value_and_grad(ours, reference, inputs, rtol=1e-10, atol=1e-13) -> None:
    torch.testing.assert_close(ours, reference, rtol=rtol, atol=atol)
    for g_ours, g_ref in zip(_grads(ours, inputs), _grads(reference, inputs), strict=True):
        torch.testing.assert_close(g_ours, g_ref, rtol=rtol, atol=atol)


# --------------------------------------------------------------------------- the reference pair


@pytest.mark.parametrize("batch, dim, seed", [(2, 3, 0), (8, 5, 1), (32, 16, 2)])
def test_icon_default_is_reference_baseline(batch: int, dim: int, seed: int) -> None:
    z1, z2 = _views(batch, dim, seed, grad=True)
    _assert_same_value_and_grad(IConLoss()(z1, z2), icon_reference(z1, z2), (z1, z2))


def test_icon_gradcheck() -> None:
    z1, z2 = _views(5, 4, 3, grad=True)
    assert torch.autograd.gradcheck(IConLoss(), (z1, z2))
    assert torch.autograd.gradcheck(IConLoss(form="symmetric", temperature=0.3), (z1, z2))


@pytest.mark.parametrize("batch, dim, seed", [(2, 3, 4), (8, 5, 5), (32, 16, 6)])
def test_rkdo_default_is_reference_notebook(batch: int, dim: int, seed: int) -> None:
    z1, z2 = _views(batch, dim, seed, grad=True)
    _assert_same_value_and_grad(RKDOLoss()(z1, z2), rkdo_reference(z1, z2), (z1, z2))


@pytest.mark.parametrize("alpha, depth, tau, beta", [(0.3, 1, 0.2, 0.0), (0.9, 5, 1.0, 0.5)])
def test_rkdo_hyperparameters_match_reference(alpha, depth, tau, beta) -> None:
    z1, z2 = _views(6, 4, 7, grad=True)
    ours = RKDOLoss(alpha=alpha, depth=depth, temperature=tau, beta=beta)(z1, z2)
    ref = rkdo_reference(z1, z2, alpha=alpha, tau=tau, beta=beta, depth=depth)
    _assert_same_value_and_grad(ours, ref, (z1, z2))


def test_rkdo_detach_teacher_gradients() -> None:
    z1, z2 = _views(8, 5, 8, grad=True)
    detached = RKDOLoss(detach_teacher=True)(z1, z2)
    _assert_same_value_and_grad(detached, rkdo_reference(z1, z2, detach=True), (z1, z2))
    # same value, different gradient from the faithful mode
    through = RKDOLoss()(z1, z2)
    torch.testing.assert_close(detached, through)
    g_detached = _grads(detached, (z1,))[0]
    g_through = _grads(through, (z1,))[0]
    assert (g_detached - g_through).abs().max() > 1e-3 * g_through.abs().max()


def test_rkdo_gradcheck() -> None:
    z1, z2 = _views(4, 3, 9, grad=True)
    assert torch.autograd.gradcheck(RKDOLoss(), (z1, z2))
    assert torch.autograd.gradcheck(RKDOLoss(form="symmetric", depth=2), (z1, z2))


def test_rkdo_teacher_log_prob_is_p_after_k_mixes() -> None:
    z1, z2 = _views(6, 4, 10)
    loss = RKDOLoss(depth=3)
    nb = build_neighbourhood(z1, z2)
    sim = F.normalize(z1, dim=1) @ F.normalize(z2, dim=1).T
    p = torch.eye(6, dtype=torch.float64)
    for t in range(3):
        p = 0.5 * p + 0.5 * _softmax_dense(sim / (0.5 * (1 - 0.1 * t / 3)))
    torch.testing.assert_close(loss.teacher_log_prob(nb).exp(), p, rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------------- symmetric (NT-Xent)


def _symmetric_loop(z1, z2, tau: float, debias: float) -> float:
    """2B x 2B, self excluded; positive of i is its other view; KL by explicit loops."""
    z = torch.cat([z1, z2]).detach().numpy()
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n = z.shape[0]
    batch = n // 2
    total = 0.0
    for i in range(n):
        others = [j for j in range(n) if j != i]
        norm = sum(math.exp(z[i] @ z[j] / tau) for j in others)
        for j in others:
            p = (1 - debias) * float(j == (i + batch) % n) + debias / (n - 1)
            q = math.exp(z[i] @ z[j] / tau) / norm
            if p > 0:
                total += p * math.log(p / q)
    return total / n


@pytest.mark.parametrize("debias", [0.0, 0.2])
@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_symmetric_icon_matches_loop(debias: float, tau: float) -> None:
    z1, z2 = _views(6, 4, 11)
    got = IConLoss(form="symmetric", temperature=tau, debias=debias)(z1, z2).item()
    assert got == pytest.approx(_symmetric_loop(z1, z2, tau, debias), rel=1e-12)


def test_symmetric_simclr_at_debias_zero_is_nt_xent_cross_entropy() -> None:
    z1, z2 = _views(16, 8, 12, grad=True)
    tau, batch = 0.2, 16
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = (z @ z.T / tau).masked_fill(torch.eye(2 * batch, dtype=torch.bool), float("-inf"))
    targets = torch.cat([torch.arange(batch, 2 * batch), torch.arange(batch)])
    nt_xent = F.cross_entropy(logits, targets)
    ours = IConLoss(form="symmetric", temperature=tau, debias=0.0)(z1, z2)
    _assert_same_value_and_grad(ours, nt_xent, (z1, z2))


def test_symmetric_rkdo_matches_dense_reference() -> None:
    z1, z2 = _views(5, 4, 13, grad=True)
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = 10
    off = ~torch.eye(n, dtype=torch.bool)

    def q_at(tau):
        w = torch.exp(z @ z.T / tau) * off
        return w / w.sum(1, keepdim=True)

    p = torch.roll(torch.eye(n, dtype=torch.float64), 5, dims=1)
    ref, q = 0.0, q_at(0.5)
    for t in range(1, 4):
        p = 0.5 * p + 0.5 * q
        q = q_at(0.5 * (1 - 0.1 * t / 3))
        ref = ref + _kl_mean(p, q)
    _assert_same_value_and_grad(RKDOLoss(form="symmetric")(z1, z2), ref, (z1, z2))


def test_single_form_tsne_like_loss_matches_loop() -> None:
    rng = np.random.default_rng(14)
    x = torch.tensor(rng.normal(size=(9, 6)))
    z = torch.tensor(rng.normal(size=(9, 2)), requires_grad=True)
    loss = IConLoss(GaussianInput(3.0), StudentT(), debias=0.0, form="single")
    value = loss(z, inputs=x)
    # p: the perplexity-calibrated Gaussian (checked against Brent's method in test_kernels)
    p = GaussianInput(3.0)(build_neighbourhood(z.detach(), form="single", inputs=x))
    # q by the t-SNE formula, self excluded
    d = ((z[:, None] - z[None]) ** 2).sum(-1)
    w = (1 + d) ** -1 * (~torch.eye(9, dtype=torch.bool))
    q = w / w.sum(1, keepdim=True)
    _assert_same_value_and_grad(value, _kl_mean(p, q), (z,))


def test_supcon_single_form_anchor_without_positive_is_left_out() -> None:
    z = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 1, 2])  # anchor 5 has no other sample with label 2
    value = IConLoss(SameLabel(), debias=0.0, form="single", temperature=0.4)(z, labels=labels)
    zn = F.normalize(z, dim=1)
    off = ~torch.eye(6, dtype=torch.bool)
    w = torch.exp(zn @ zn.T / 0.4) * off
    q = w / w.sum(1, keepdim=True)
    same = (labels[:, None] == labels[None]) & off
    p = same.double() / same.sum(1, keepdim=True).clamp_min(1)
    rows = [0, 1, 2, 3, 4]
    ref = _kl_mean(p[rows], q[rows])
    _assert_same_value_and_grad(value, ref, (z,))
    assert torch.isfinite(torch.autograd.grad(value, z)[0]).all()


def test_supcon_pair_form_matches_loop() -> None:
    z1, z2 = _views(8, 4, 15, grad=True)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 3])
    value = IConLoss(SameLabel(), debias=0.1, temperature=0.3)(z1, z2, labels=labels)
    same = (labels[:, None] == labels[None]).double()
    p = 0.9 * same / same.sum(1, keepdim=True) + 0.1 / 8
    q = _softmax_dense(F.normalize(z1, dim=1) @ F.normalize(z2, dim=1).T / 0.3)
    _assert_same_value_and_grad(value, _kl_mean(p, q), (z1, z2))


# -------------------------------------------------------------------------------- invariants


def test_alpha_zero_keeps_teacher_fixed() -> None:
    """alpha = 0: p(t) = p0, so RKDO = sum_t I-Con(debias 0) at the scheduled temperatures."""
    z1, z2 = _views(8, 4, 16, grad=True)
    ours = RKDOLoss(alpha=0.0, depth=3)(z1, z2)
    ref = sum(icon_reference(z1, z2, tau=0.5 * (1 - 0.1 * t / 3), debias=0.0) for t in (1, 2, 3))
    _assert_same_value_and_grad(ours, ref, (z1, z2))


@pytest.mark.parametrize("alpha", [0.2, 0.5, 0.8])
def test_beta_zero_closed_form_and_jensen_bound(alpha: float) -> None:
    """beta = 0: q(t) = q for all t, p(t) = (1-a)^t p0 + (1-(1-a)^t) q, and each term
    KL(p(t) || q) <= (1-a)^t KL(p0 || q) by convexity of KL in p."""
    z1, z2 = _views(12, 6, 17)
    kl0 = icon_reference(z1, z2, debias=0.0).item()
    losses = [RKDOLoss(alpha=alpha, depth=k, beta=0.0)(z1, z2).item() for k in (1, 2, 3)]
    zn1, zn2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    q = _softmax_dense(zn1 @ zn2.T / 0.5)
    p0 = torch.eye(12, dtype=torch.float64)
    terms = [
        _kl_mean((1 - alpha) ** t * p0 + (1 - (1 - alpha) ** t) * q, q).item() for t in (1, 2, 3)
    ]
    for k in (1, 2, 3):
        assert losses[k - 1] == pytest.approx(sum(terms[:k]), rel=1e-12)
    for t, term in enumerate(terms, start=1):
        assert 0 < term <= (1 - alpha) ** t * kl0
    assert losses[0] == pytest.approx(terms[0], rel=1e-12)
    assert losses[2] - losses[1] == pytest.approx(terms[2], rel=1e-9)


def test_debias_zero_equals_no_debias() -> None:
    z1, z2 = _views(7, 3, 18)
    plain = IConLoss(debias=0.0)(z1, z2)
    torch.testing.assert_close(plain, icon_reference(z1, z2, debias=0.0), rtol=1e-12, atol=0)
    torch.testing.assert_close(IConLoss(Augmentation(), debias=0.0)(z1, z2), plain)
    torch.testing.assert_close(
        RKDOLoss(debias=0.0)(z1, z2), RKDOLoss()(z1, z2), rtol=0, atol=0
    )


def test_rkdo_debias_mixes_uniform_into_p0() -> None:
    z1, z2 = _views(6, 3, 19, grad=True)
    p0 = 0.7 * torch.eye(6, dtype=torch.float64) + 0.3 / 6
    ours = RKDOLoss(debias=0.3)(z1, z2)
    _assert_same_value_and_grad(ours, rkdo_reference(z1, z2, p0=p0), (z1, z2))


def test_kl_zero_when_student_equals_teacher() -> None:
    # p = CoMembership over all-equal assignments is uniform; q is uniform when all embeddings
    # coincide: KL = 0 exactly (up to rounding)
    z = torch.ones(5, 3, dtype=torch.float64)
    loss = IConLoss(CoMembership(), debias=0.0)(z, z, assignments=torch.zeros(5, dtype=torch.long))
    assert abs(loss.item()) < 1e-14


def test_random_unit_embeddings_ratio_about_three_quarters() -> None:
    """MISSION.md: on random unit embeddings RKDO's loss is ~0.75x I-Con's at B = 64."""
    ratios = []
    for seed in range(4):
        z1, z2 = _views(64, 128, 100 + seed)
        ratios.append((RKDOLoss()(z1, z2) / IConLoss()(z1, z2)).item())
    assert 0.72 < float(np.mean(ratios)) < 0.78
    # and the reference re-derivations agree on the number
    z1, z2 = _views(64, 128, 100)
    assert (rkdo_reference(z1, z2) / icon_reference(z1, z2)).item() == pytest.approx(ratios[0])


# ------------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: IConLoss(temperature=0.0), "temperature"),
        (lambda: IConLoss(temperature=-0.5), "temperature"),
        (lambda: RKDOLoss(temperature=0.0), "temperature"),
        (lambda: Cosine(temperature=-1.0), "temperature"),
        (lambda: RKDOLoss(alpha=-0.1), "alpha"),
        (lambda: RKDOLoss(alpha=1.1), "alpha"),
        (lambda: IConLoss(debias=-0.1), "debias"),
        (lambda: IConLoss(debias=1.0), "debias"),
        (lambda: RKDOLoss(debias=1.0), "debias"),
        (lambda: RKDOLoss(depth=0), "depth"),
        (lambda: RKDOLoss(depth=1.5), "depth"),
        (lambda: RKDOLoss(depth=True), "depth"),
        (lambda: RKDOLoss(beta=1.0), "beta"),
        (lambda: RKDOLoss(beta=-0.1), "beta"),
        (lambda: IConLoss(form="both"), "form"),
        (lambda: IConLoss(learned=Cosine(0.5), temperature=0.5), "temperature"),
    ],
)
def test_bad_constructor_arguments_raise(make, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("loss", [IConLoss(), RKDOLoss(), IConLoss(form="symmetric")])
def test_bad_views_raise(loss) -> None:
    with pytest.raises(ValueError, match="same shape"):
        loss(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match="same shape"):
        loss(torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(ValueError, match="at least 2"):
        loss(torch.randn(1, 3), torch.randn(1, 3))
    with pytest.raises(ValueError, match="two views"):
        loss(torch.randn(4, 3))
    with pytest.raises(ValueError, match="2-D"):
        loss(torch.randn(4), torch.randn(4))


def test_bad_facts_raise() -> None:
    z1, z2 = torch.randn(6, 3), torch.randn(6, 3)
    with pytest.raises(ValueError, match="labels"):
        IConLoss(SameLabel())(z1, z2)
    with pytest.raises(ValueError, match="labels"):
        IConLoss(SameLabel())(z1, z2, labels=torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="one view"):
        IConLoss(form="single")(z1, z2)
    with pytest.raises(ValueError, match="perplexity"):
        IConLoss(GaussianInput(30.0), form="single")(z1, inputs=torch.randn(6, 4))
    with pytest.raises(ValueError, match="perplexity"):
        RKDOLoss(supervisory=GaussianInput(6.0), form="pair")(z1, z2, inputs=torch.randn(6, 4))


# --------------------------------------------------------------------------- no silent NaN


LOSSES = {
    "icon": lambda tau: IConLoss(temperature=tau),
    "icon_symmetric": lambda tau: IConLoss(temperature=tau, form="symmetric", debias=0.0),
    "supcon_symmetric": lambda tau: IConLoss(SameLabel(), temperature=tau, form="symmetric"),
    "rkdo": lambda tau: RKDOLoss(temperature=tau),
    "rkdo_detached_symmetric": lambda tau: RKDOLoss(
        temperature=tau, detach_teacher=True, form="symmetric"),
    "rkdo_supcon": lambda tau: RKDOLoss(supervisory=SameLabel(), temperature=tau),
}


def _finite_loss_and_grads(loss, z1, z2, labels) -> None:
    value = loss(z1, z2, labels=labels)
    assert torch.isfinite(value), value
    g1, g2 = torch.autograd.grad(value, (z1, z2))
    assert torch.isfinite(g1).all() and torch.isfinite(g2).all()


@pytest.mark.parametrize("name", list(LOSSES))
def test_finite_at_temperature_0_02_float32(name: str) -> None:
    torch.manual_seed(20)
    labels = torch.randint(0, 4, (32,))
    loss = LOSSES[name](0.02)
    z1, z2 = _views(32, 16, 20, dtype=torch.float32, grad=True)
    _finite_loss_and_grads(loss, z1, z2, labels)
    # nearly identical embeddings: every cosine ~ 1, logits ~ 50 everywhere
    base = torch.randn(1, 16)
    z1 = (base + 1e-4 * torch.randn(32, 16)).requires_grad_()
    z2 = (base + 1e-4 * torch.randn(32, 16)).requires_grad_()
    _finite_loss_and_grads(loss, z1, z2, labels)
    # and wildly different ones: antipodal pairs, logits from -50 to 50
    z1 = torch.randn(32, 16).requires_grad_()
    z2 = (-z1.detach() + 1e-3 * torch.randn(32, 16)).requires_grad_()
    _finite_loss_and_grads(loss, z1, z2, labels)


@pytest.mark.parametrize("name", list(LOSSES))
def test_finite_and_close_under_bf16_autocast(name: str) -> None:
    torch.manual_seed(21)
    linear = torch.nn.Linear(24, 16)
    x1, x2 = torch.randn(32, 24), torch.randn(32, 24)
    labels = torch.randint(0, 4, (32,))
    loss = LOSSES[name](0.1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z1, z2 = linear(x1), linear(x2)
        assert z1.dtype == torch.bfloat16
        value = loss(z1, z2, labels=labels)
    assert value.dtype == torch.float32 and torch.isfinite(value)
    value.backward()
    assert all(torch.isfinite(p.grad).all() for p in linear.parameters())
    # the loss itself runs in float32 on the bf16 embeddings: same value as float32 math on them
    reference = loss(z1.detach().float(), z2.detach().float(), labels=labels)
    torch.testing.assert_close(value.detach(), reference, rtol=1e-5, atol=1e-6)
    # and close to the all-float32 network (bf16 rounding of the Linear only)
    full = loss(linear(x1), linear(x2), labels=labels)
    assert abs(value.item() - full.item()) < 0.05 * abs(full.item())


@pytest.mark.parametrize("form", ["pair", "symmetric"])
@pytest.mark.parametrize("learned", [Cosine(0.3), StudentT()])
@pytest.mark.parametrize("detach", [False, True])
def test_fused_score_path_equals_log_prob_path(form: str, learned, detach: bool) -> None:
    """The losses run rkdo.fused_scores.softmax_*_kl from the scores; the log-prob path of
    rkdo.functional gives the same value and gradients (SupCon labels: empty teacher rows)."""
    from rkdo.functional import mean_kl, recursive_kl

    z1, z2 = _views(10, 4, seed=3, grad=True)
    labels = torch.tensor([0, 0, 1, 1, 2, 3, 3, 4, 4, 4])
    rkdo = RKDOLoss(supervisory=SameLabel(), learned=learned, form=form, debias=0.1,
                    detach_teacher=detach)
    icon = IConLoss(supervisory=SameLabel(), learned=learned, form=form)
    for loss in (rkdo, icon):
        nb = build_neighbourhood(z1, z2, form=form, labels=labels)
        teacher = loss.supervisory.log_prob(nb)
        if loss is rkdo:
            expected = recursive_kl(teacher, loss.learned.log_probs(nb, loss.temperatures()),
                                    loss.alpha, detach_teacher=detach)
        else:
            expected = mean_kl(teacher, loss.learned.log_prob(nb))
        got = loss(z1, z2, labels=labels)
        grads_expected = torch.autograd.grad(expected, (z1, z2))
        grads_got = torch.autograd.grad(got, (z1, z2))
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-14)
        for a, b in zip(grads_got, grads_expected, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13)
