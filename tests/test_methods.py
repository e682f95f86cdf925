"""Tests of rkdo.methods: every preset builds the right kernels and gives the value of an
independent dense float64 re-derivation, static and recursive, debiased or not."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.optimize
import torch

from rkdo import IConLoss, RKDOLoss, methods
from rkdo.kernels import (
    Augmentation,
    Cluster,
    Cosine,
    Debiased,
    GaussianEmbedding,
    GaussianInput,
    SameLabel,
    StudentT,
)

torch.set_num_threads(1)

BATCH, DIM, PERPLEXITY = 10, 4, 4.0

# name -> (supervisory class, learned class, form, options the test passes)
EXPECTED = {
    "simclr": (Augmentation, Cosine, "symmetric", {}),
    "icon": (Augmentation, Cosine, "pair", {}),
    "rkdo": (Augmentation, Cosine, "pair", {}),
    "supcon": (SameLabel, Cosine, "pair", {"temperature": 0.3}),
    "sne": (GaussianInput, GaussianEmbedding, "single", {"perplexity": PERPLEXITY}),
    "tsne": (GaussianInput, StudentT, "single", {"perplexity": PERPLEXITY, "dof": 2.0}),
    "cluster": (Augmentation, Cluster, "pair", {"dim": DIM, "n_clusters": 3}),
    "kmeans": (GaussianInput, Cluster, "single",
               {"perplexity": PERPLEXITY, "dim": DIM, "n_clusters": 3, "temperature": 0.7}),
}
DEFAULT_DEBIAS = {"icon": 0.2}
DEFAULT_RECURSIVE = {"rkdo"}


def test_every_preset_is_covered() -> None:
    own = [name for name in methods.names() if not methods.METHODS[name].outside]
    assert sorted(own) == sorted(EXPECTED)
    assert all(name in methods.describe() for name in methods.names())


# ----------------------------------------------------------------- independent dense formulas


def _gaussian_p(x: np.ndarray, perplexity: float) -> np.ndarray:
    """Single form: p(j|i) ∝ exp(-beta_i |x_i - x_j|^2), j != i, exp(H) = perplexity (Brent)."""
    n = x.shape[0]
    p = np.zeros((n, n))
    for i in range(n):
        others = [j for j in range(n) if j != i]
        d = ((x[others] - x[i]) ** 2).sum(1)
        d = d - d.min()

        def row(log_beta: float, d=d) -> np.ndarray:
            w = np.exp(-math.exp(log_beta) * d)
            return w / w.sum()

        def gap(log_beta: float) -> float:
            r = row(log_beta)
            r = r[r > 0]
            return -(r * np.log(r)).sum() - math.log(perplexity)

        p[i, others] = row(scipy.optimize.brentq(gap, -40, 40, xtol=1e-14))
    return p


def _masked_softmax(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    w = torch.exp(logits - logits.max()) * allowed
    return w / w.sum(1, keepdim=True)


def _learned_q(name, loss, anchors, candidates, allowed, tau, opts) -> torch.Tensor:
    if name in ("simclr", "icon", "rkdo", "supcon"):
        a = anchors / anchors.norm(dim=1, keepdim=True)
        c = candidates / candidates.norm(dim=1, keepdim=True)
        return _masked_softmax(a @ c.T / tau, allowed)
    d = ((anchors[:, None] - candidates[None]) ** 2).sum(-1)
    if name == "sne":
        return _masked_softmax(-d / tau, allowed)
    if name == "tsne":
        nu = opts["dof"]
        return _masked_softmax(-(nu + 1) / (2 * tau) * torch.log(1 + d / nu), allowed)
    # cluster kernel: f(c|i) = softmax_c(cos(z_i, mu_c) / tau), q = f_a diag(1/col) f_c^T
    mu = loss.learned.prototypes.detach().double()
    mu = mu / mu.norm(dim=1, keepdim=True)

    def resp(z):
        z = z / z.norm(dim=1, keepdim=True)
        return torch.softmax(z @ mu.T / tau, dim=1)

    fa, fc = resp(anchors), resp(candidates)
    q = (fa / fc.sum(0)) @ fc.T
    q = q * allowed
    return q / q.sum(1, keepdim=True)


def _kl_mean(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    terms = torch.where(p > 0, p * (torch.log(torch.where(p > 0, p, 1.0))
                                    - torch.log(torch.where(p > 0, q, 1.0))), 0.0)
    return terms.sum(1).mean()


def _reference(name, loss, recursive, debias, opts, rec, z1, z2, x, labels) -> torch.Tensor:
    form = EXPECTED[name][2]
    if form == "pair":
        anchors, candidates = z1, z2
        allowed = torch.ones(BATCH, BATCH, dtype=torch.float64)
    elif form == "symmetric":  # 2B anchors, each against the other 2B - 1 views
        anchors = candidates = torch.cat([z1, z2])
        allowed = 1.0 - torch.eye(2 * BATCH, dtype=torch.float64)
    else:
        anchors = candidates = z1
        allowed = 1.0 - torch.eye(BATCH, dtype=torch.float64)
    if name == "supcon":
        p0 = (labels[:, None] == labels[None]).double()
        p0 = p0 / p0.sum(1, keepdim=True)
    elif form == "pair":
        p0 = torch.eye(BATCH, dtype=torch.float64)
    elif form == "symmetric":  # the positive of view i is the other view of its sample
        p0 = torch.eye(2 * BATCH, dtype=torch.float64).roll(BATCH, dims=1)
    else:
        p0 = torch.tensor(_gaussian_p(x.numpy(), opts["perplexity"]))
    p0 = (1 - debias) * p0 + debias * allowed / allowed.sum(1, keepdim=True)
    tau = opts.get("temperature", 0.5 if name in ("simclr", "icon", "rkdo", "supcon", "cluster",
                                                  "kmeans") else 1.0)

    def q(t_tau):
        return _learned_q(name, loss, anchors, candidates, allowed, t_tau, opts)

    if not recursive:
        return _kl_mean(p0, q(tau))
    alpha, beta, depth = rec.get("alpha", 0.5), rec.get("beta", 0.1), rec.get("depth", 3)
    p, q_prev, total = p0, q(tau), 0.0
    for t in range(1, depth + 1):
        p = (1 - alpha) * p + alpha * q_prev
        q_prev = q(tau * (1 - beta * t / depth))
        total = total + _kl_mean(p, q_prev)
    return total


CASES = [
    (name, recursive, debias)
    for name in EXPECTED
    for recursive in (None, False, True)
    for debias in (None, 0.0, 0.3)
]


@pytest.mark.parametrize("name, recursive, debias", CASES)
def test_preset_kernels_and_value(name: str, recursive, debias) -> None:
    sup_cls, learned_cls, form, opts = EXPECTED[name]
    rec = {"alpha": 0.3, "depth": 2} if recursive and name != "rkdo" else {}
    torch.manual_seed(0)
    loss = methods.get(name, recursive=recursive, debias=debias, **opts, **rec)
    is_recursive = name in DEFAULT_RECURSIVE if recursive is None else recursive
    used_debias = DEFAULT_DEBIAS.get(name, 0.0) if debias is None else debias

    assert isinstance(loss, RKDOLoss if is_recursive else IConLoss)
    assert loss.form == form
    supervisory = loss.supervisory
    if used_debias:
        assert isinstance(supervisory, Debiased) and supervisory.amount == used_debias
        supervisory = supervisory.base
    assert type(supervisory) is sup_cls
    assert type(loss.learned) is learned_cls
    if "perplexity" in opts:
        assert supervisory.perplexity == opts["perplexity"]
    if is_recursive:
        assert (loss.alpha, loss.depth) == (rec.get("alpha", 0.5), rec.get("depth", 3))
        assert loss.beta == 0.1 and loss.detach_teacher is False
    if learned_cls is Cluster:
        loss = loss.double()
        assert tuple(loss.learned.prototypes.shape) == (opts["n_clusters"], DIM)
        assert len(list(loss.parameters())) == 1

    g = torch.Generator().manual_seed(1)
    z1 = torch.randn(BATCH, DIM, generator=g, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(BATCH, DIM, generator=g, dtype=torch.float64, requires_grad=True)
    x = torch.randn(BATCH, 6, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 3, 3])
    if form != "single":
        value = loss(z1, z2, labels=labels)
        inputs = (z1, z2)
    else:
        value = loss(z1, inputs=x)
        inputs = (z1,)
    expected = _reference(name, loss, is_recursive, used_debias, opts, rec, z1, z2, x, labels)
    torch.testing.assert_close(value, expected, rtol=1e-9, atol=1e-12)
    got_grads = torch.autograd.grad(value, inputs)
    ref_grads = torch.autograd.grad(expected, inputs)
    for a, b in zip(got_grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-10)


def test_reference_presets_hyperparameters() -> None:
    icon, rkdo = methods.get("icon"), methods.get("rkdo")
    assert icon.learned.temperature == 0.5 and icon.supervisory.amount == 0.2
    assert (rkdo.alpha, rkdo.depth, rkdo.beta, rkdo.learned.temperature) == (0.5, 3, 0.1, 0.5)
    assert not isinstance(rkdo.supervisory, Debiased)
    np.testing.assert_allclose(rkdo.temperatures(), [0.5, 0.48333333, 0.46666667, 0.45])


def test_simclr_default_is_nt_xent_and_pair_is_one_argument_away() -> None:
    z1, z2 = torch.randn(8, 5, dtype=torch.float64), torch.randn(8, 5, dtype=torch.float64)
    loss = methods.get("simclr", temperature=0.2)
    assert methods.get("simclr", form="pair").form == "pair"
    z = torch.cat([z1, z2])
    z = z / z.norm(dim=1, keepdim=True)
    logits = (z @ z.T / 0.2).masked_fill(torch.eye(16, dtype=torch.bool), float("-inf"))
    targets = torch.cat([torch.arange(8, 16), torch.arange(8)])
    expected = torch.nn.functional.cross_entropy(logits, targets)
    torch.testing.assert_close(loss(z1, z2), expected, rtol=1e-12, atol=0)


def test_detach_teacher_option_reaches_the_loss() -> None:
    assert methods.get("supcon", recursive=True, detach_teacher=True).detach_teacher is True


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: methods.get("nope"), "unknown method"),
        (lambda: methods.get("SimCLR"), "unknown method"),
        (lambda: methods.get("simclr", alpha=0.5), "alpha"),
        (lambda: methods.get("simclr", perplexity=5.0), "perplexity"),
        (lambda: methods.get("cluster"), "dim"),
        (lambda: methods.get("rkdo", alpha=1.5), "alpha"),
        (lambda: methods.get("rkdo", depth=0), "depth"),
        (lambda: methods.get("rkdo", beta=1.0), "beta"),
        (lambda: methods.get("icon", debias=1.0), "debias"),
        (lambda: methods.get("icon", temperature=0.0), "temperature"),
        (lambda: methods.get("simclr", form="triple"), "form"),
        (lambda: methods.get("tsne", dof=0.0), "dof"),
        (lambda: methods.get("sne", perplexity=0.5), "perplexity"),
        (lambda: methods.get("lightly-ntxent", recursive=True), "outside baseline.*recursive"),
        (lambda: methods.get("lightly-ntxent", perplexity=3.0), "outside baseline.*perplexity"),
    ],
)
def test_bad_preset_arguments_raise(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_preset_missing_facts_raise() -> None:
    z1, z2 = torch.randn(8, 4), torch.randn(8, 4)
    with pytest.raises(ValueError, match="labels"):
        methods.get("supcon")(z1, z2)
    with pytest.raises(ValueError, match="inputs"):
        methods.get("tsne", perplexity=3.0)(z1)
    # default perplexity 30 is out of range for a batch of 8 (7 candidates per anchor)
    with pytest.raises(ValueError, match="perplexity"):
        methods.get("sne")(z1, inputs=torch.randn(8, 3))
