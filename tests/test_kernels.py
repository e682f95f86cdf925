"""Tests of rkdo.kernels: each kernel against a loop or dense float64 form of its formula."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.optimize
import torch
from sklearn.neighbors import NearestNeighbors

from rkdo import kernels as K
from rkdo.neighbourhood import build_neighbourhood

torch.set_num_threads(1)

FORMS = ("pair", "symmetric", "single")


def _views(batch: int, dim: int, seed: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, dim, generator=g, dtype=dtype), torch.randn(
        batch, dim, generator=g, dtype=dtype
    )


def _nb(z1, z2, form: str, **facts):
    return build_neighbourhood(z1, None if form == "single" else z2, form=form, **facts)


def _layout(z1: torch.Tensor, z2: torch.Tensor, form: str):
    """Independent restatement of the three forms: anchors, candidates, their sample indices,
    and the allowed-candidate matrix (numpy)."""
    batch = z1.shape[0]
    idx = np.arange(batch)
    if form == "pair":
        anchors, candidates = z1, z2
        a_idx, c_idx = idx, idx
        allowed = np.ones((batch, batch), dtype=bool)
    elif form == "symmetric":
        anchors = candidates = torch.cat([z1, z2])
        a_idx = c_idx = np.concatenate([idx, idx])
        allowed = ~np.eye(2 * batch, dtype=bool)
    else:
        anchors = candidates = z1
        a_idx = c_idx = idx
        allowed = ~np.eye(batch, dtype=bool)
    return anchors, candidates, a_idx, c_idx, allowed


def _normalize_rows(weights: np.ndarray) -> np.ndarray:
    return weights / weights.sum(1, keepdims=True)


def _dense_learned(scores: torch.Tensor, allowed: np.ndarray) -> torch.Tensor:
    """Masked softmax written as exp / sum (scores small enough here not to overflow)."""
    w = torch.exp(scores) * torch.tensor(allowed, dtype=scores.dtype)
    return w / w.sum(1, keepdim=True)


# -------------------------------------------------------------------------- supervisory kernels


@pytest.mark.parametrize("form", FORMS)
def test_augmentation_targets_other_views(form: str) -> None:
    z1, z2 = _views(6, 3, 0)
    ids = torch.tensor([0, 1, 2, 0, 3, 1])  # for 'single': samples 0&3, 1&5 are one image
    facts = {"ids": ids} if form == "single" else {}
    got = K.Augmentation()(_nb(z1, z2, form, **facts)).numpy()
    B = 6
    if form == "pair":
        expected = np.eye(B)
    elif form == "symmetric":
        expected = np.zeros((2 * B, 2 * B))
        for i in range(2 * B):
            expected[i, (i + B) % (2 * B)] = 1.0
    else:
        expected = np.zeros((B, B))
        for i in range(B):
            for j in range(B):
                expected[i, j] = float(i != j and ids[i] == ids[j])
        has = expected.sum(1) > 0
        expected[has] = _normalize_rows(expected[has])
    np.testing.assert_allclose(got, expected, atol=1e-15)
    assert got.dtype == np.float64


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("kernel, key", [(K.SameLabel, "labels"), (K.CoMembership, "assignments")])
def test_same_attribute_kernels_match_loop(form: str, kernel, key: str) -> None:
    z1, z2 = _views(8, 3, 1)
    fact = torch.tensor([0, 1, 0, 2, 1, 0, 2, 2])
    got = kernel()(_nb(z1, z2, form, **{key: fact})).numpy()
    _, _, a_idx, c_idx, allowed = _layout(z1, z2, form)
    expected = np.zeros(allowed.shape)
    for i in range(allowed.shape[0]):
        for j in range(allowed.shape[1]):
            expected[i, j] = float(allowed[i, j] and fact[a_idx[i]] == fact[c_idx[j]])
    np.testing.assert_allclose(got, _normalize_rows(expected), atol=1e-15)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-12)


def test_same_label_needs_labels() -> None:
    z1, z2 = _views(4, 3, 2)
    with pytest.raises(ValueError, match="labels"):
        K.SameLabel().log_prob(_nb(z1, z2, "pair"))


def _reference_gaussian_row(d: np.ndarray, perplexity: float) -> np.ndarray:
    """p_j ∝ exp(-beta d_j) with exp(H(p)) = perplexity, beta by Brent's method on log beta."""
    d = d - d.min()

    def entropy_gap(log_beta: float) -> float:
        logits = -math.exp(log_beta) * d
        logits -= logits.max()
        p = np.exp(logits) / np.exp(logits).sum()
        nz = p > 0
        return -(p[nz] * np.log(p[nz])).sum() - math.log(perplexity)

    log_beta = scipy.optimize.brentq(entropy_gap, -40.0, 40.0, xtol=1e-14)
    logits = -math.exp(log_beta) * d
    p = np.exp(logits - logits.max())
    return p / p.sum()


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("perplexity", [2.0, 5.0, 9.5])
def test_gaussian_input_hits_perplexity_and_matches_brent(form: str, perplexity: float) -> None:
    rng = np.random.default_rng(3)
    inputs = torch.tensor(rng.normal(size=(12, 2, 3)) * rng.uniform(0.1, 10, size=(12, 1, 1)))
    z1, z2 = _views(12, 4, 3, dtype=torch.float32)
    nb = _nb(z1, z2, form, inputs=inputs)
    log_p = K.GaussianInput(perplexity).log_prob(nb)
    assert log_p.dtype == torch.float32
    p = log_p.double().exp().numpy()
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-6)
    _, _, a_idx, c_idx, allowed = _layout(z1, z2, form)
    assert (p[~allowed] == 0).all()
    flat = inputs.flatten(1).numpy()
    for i in range(p.shape[0]):
        row = p[i, allowed[i]]
        nz = row > 0
        perp = math.exp(-(row[nz] * np.log(row[nz])).sum())
        assert abs(perp - perplexity) < 1e-3, (i, perp)
        d = ((flat[a_idx[i]] - flat[c_idx[allowed[i]]]) ** 2).sum(1)
        np.testing.assert_allclose(row, _reference_gaussian_row(d, perplexity), atol=2e-6)


def test_calibrate_gaussian_float64_precision() -> None:
    rng = np.random.default_rng(4)
    d = torch.tensor(rng.uniform(0, 50, size=(20, 30)))
    log_p = K.calibrate_gaussian(d, 7.0)
    perp = torch.exp(-(log_p.exp() * log_p).sum(1))
    torch.testing.assert_close(perp, torch.full_like(perp, 7.0), rtol=0, atol=1e-9)


def test_gaussian_input_bad_perplexity() -> None:
    z1, z2 = _views(6, 3, 5)
    inputs = torch.randn(6, 4)
    with pytest.raises(ValueError, match="perplexity"):
        K.GaussianInput(1.0)
    with pytest.raises(ValueError, match="perplexity"):
        K.GaussianInput(-3.0)
    # single form: 5 candidates per anchor, so perplexity must be < 5
    with pytest.raises(ValueError, match="perplexity"):
        K.GaussianInput(5.0).log_prob(_nb(z1, z2, "single", inputs=inputs))
    K.GaussianInput(4.9).log_prob(_nb(z1, z2, "single", inputs=inputs))
    with pytest.raises(ValueError, match="inputs"):
        K.GaussianInput(3.0).log_prob(_nb(z1, z2, "single"))


@pytest.mark.parametrize("form", ["pair", "single"])
@pytest.mark.parametrize("k", [1, 4])
def test_knn_graph_matches_sklearn(form: str, k: int) -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(15, 5))
    z1, z2 = _views(15, 3, 6)
    got = K.KNNGraph(k)(_nb(z1, z2, form, inputs=torch.tensor(x))).numpy()
    extra = 1 if form == "single" else 0  # single: drop the point itself
    _, nearest = NearestNeighbors(n_neighbors=k + extra).fit(x).kneighbors(x)
    expected = np.zeros((15, 15))
    for i in range(15):
        expected[i, nearest[i, extra:]] = 1.0 / k
    np.testing.assert_allclose(got, expected, atol=1e-15)


def test_knn_graph_symmetric_form_loop() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(6, 2))
    z1, z2 = _views(6, 3, 7)
    got = K.KNNGraph(3)(_nb(z1, z2, "symmetric", inputs=torch.tensor(x))).numpy()
    for i in range(12):
        sample = i % 6
        others = [s for s in range(6) if s != sample]
        closest = min(others, key=lambda s: ((x[s] - x[sample]) ** 2).sum())
        # the other view (distance 0) and both views of the closest other sample
        expected = np.zeros(12)
        expected[[(i + 6) % 12, closest, closest + 6]] = 1 / 3
        np.testing.assert_allclose(got[i], expected, atol=1e-15)


def test_knn_graph_bad_k() -> None:
    z1, z2 = _views(5, 3, 8)
    with pytest.raises(ValueError, match="k must"):
        K.KNNGraph(0)
    with pytest.raises(ValueError, match="k must"):
        K.KNNGraph(2.5)
    with pytest.raises(ValueError, match="k must"):
        K.KNNGraph(5).log_prob(_nb(z1, z2, "single", inputs=torch.randn(5, 2)))


# ----------------------------------------------------------------------------- learned kernels


def _cosine_scores(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    out = torch.empty(a.shape[0], c.shape[0], dtype=a.dtype)
    for i in range(a.shape[0]):
        for j in range(c.shape[0]):
            out[i, j] = (a[i] * c[j]).sum() / (a[i].norm() * c[j].norm())
    return out


def _sq_dist(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return ((a[:, None, :] - c[None, :, :]) ** 2).sum(-1)


LEARNED = {
    "cosine": (lambda: K.Cosine(0.3), lambda a, c: _cosine_scores(a, c) / 0.3),
    "cosine_raw": (lambda: K.Cosine(0.7, normalize=False), lambda a, c: a @ c.T / 0.7),
    "gaussian": (lambda: K.GaussianEmbedding(2.0), lambda a, c: -_sq_dist(a, c) / 2.0),
    "student_t": (lambda: K.StudentT(), lambda a, c: -torch.log1p(_sq_dist(a, c))),
    "student_t_dof3": (
        lambda: K.StudentT(dof=3.0, temperature=0.5),
        lambda a, c: torch.log(((1 + _sq_dist(a, c) / 3.0) ** (-(3.0 + 1) / 2)) ** (1 / 0.5)),
    ),
}


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("name", list(LEARNED))
def test_learned_kernels_match_dense_formula(form: str, name: str) -> None:
    make, scores = LEARNED[name]
    z1, z2 = _views(7, 4, 9)
    kernel = make()
    got = kernel(_nb(z1, z2, form))
    anchors, candidates, _, _, allowed = _layout(z1, z2, form)
    expected = _dense_learned(scores(anchors, candidates), allowed)
    torch.testing.assert_close(got, expected, rtol=1e-11, atol=1e-14)
    torch.testing.assert_close(got.sum(1), torch.ones(got.shape[0], dtype=got.dtype))


def test_student_t_is_tsne_kernel() -> None:
    # t-SNE's q: (1 + |zi - zj|^2)^-1 normalised over j != i
    z = torch.randn(5, 2, dtype=torch.float64)
    got = K.StudentT()(_nb(z, None, "single")).numpy()
    zn = z.numpy()
    expected = np.zeros((5, 5))
    for i in range(5):
        for j in range(5):
            if i != j:
                expected[i, j] = 1.0 / (1.0 + ((zn[i] - zn[j]) ** 2).sum())
    np.testing.assert_allclose(got, _normalize_rows(expected), rtol=1e-12)


def test_learned_temperature_override() -> None:
    z1, z2 = _views(5, 3, 10)
    nb = _nb(z1, z2, "pair")
    torch.testing.assert_close(K.Cosine(0.5).log_prob(nb, 0.2), K.Cosine(0.2).log_prob(nb))
    with pytest.raises(ValueError, match="temperature"):
        K.Cosine(0.5).log_prob(nb, 0.0)


@pytest.mark.parametrize("form", ["pair", "symmetric"])
@pytest.mark.parametrize("name", list(LEARNED))
def test_learned_kernels_gradcheck(form: str, name: str) -> None:
    make, _ = LEARNED[name]
    kernel = make()
    z1, z2 = _views(4, 3, 11)
    z1.requires_grad_(True)
    z2.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: kernel(_nb(a, b, form)), (z1, z2))


def _cluster_loop(z_a, z_c, protos, tau, allowed):
    """q(j|i) = sum_c f(c|i) f(c|j) / sum_k f(c|k) by loops, then masked + renormalised."""
    def resp(z):
        cos = _cosine_scores(z, protos) / tau
        return torch.exp(cos) / torch.exp(cos).sum(1, keepdim=True)

    fa, fc = resp(z_a), resp(z_c)
    col = fc.sum(0)
    q = torch.zeros(z_a.shape[0], z_c.shape[0], dtype=z_a.dtype)
    for i in range(z_a.shape[0]):
        for j in range(z_c.shape[0]):
            q[i, j] = sum(fa[i, c] * fc[j, c] / col[c] for c in range(protos.shape[0]))
    raw_row_sums = q.sum(1)
    q = q * torch.tensor(allowed, dtype=q.dtype)
    return q / q.sum(1, keepdim=True), raw_row_sums


@pytest.mark.parametrize("form", FORMS)
def test_cluster_kernel_matches_loop(form: str) -> None:
    torch.manual_seed(12)
    kernel = K.Cluster(3, 4, temperature=0.4).double()
    z1, z2 = _views(6, 4, 12)
    got = kernel(_nb(z1, z2, form))
    anchors, candidates, _, _, allowed = _layout(z1, z2, form)
    expected, raw_sums = _cluster_loop(anchors, candidates, kernel.prototypes.detach(), 0.4,
                                       allowed)
    torch.testing.assert_close(raw_sums, torch.ones_like(raw_sums), rtol=0, atol=1e-12)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-14)


def test_cluster_kernel_gradcheck_embeddings_and_prototypes() -> None:
    torch.manual_seed(13)
    kernel = K.Cluster(3, 4, temperature=0.5).double()
    z1, z2 = _views(4, 4, 13)
    z1.requires_grad_(True)
    z2.requires_grad_(True)
    protos = kernel.prototypes.detach().clone().requires_grad_(True)

    def f(a, b, mu):
        return torch.func.functional_call(kernel, {"prototypes": mu}, (_nb(a, b, "pair"),))

    assert torch.autograd.gradcheck(f, (z1, z2, protos))


def test_cluster_kernel_finite_at_low_temperature_float32() -> None:
    """Embeddings sitting on opposite prototypes at tau = 0.02: q(j|i) ~ exp(-100) must not
    underflow to log 0 (it did when the kernel multiplied probabilities in float32)."""
    kernel = K.Cluster(2, 4, temperature=0.02)
    with torch.no_grad():
        kernel.prototypes.copy_(torch.tensor([[1.0, 0, 0, 0], [-1.0, 0, 0, 0]]))
    z = torch.tensor([[1.0, 0, 0, 0], [-1.0, 0, 0, 0], [1, 0.01, 0, 0], [-1, 0.01, 0, 0]],
                     requires_grad=True)
    log_q = kernel.log_prob(_nb(z, None, "single"))
    finite = log_q[~torch.eye(4, dtype=torch.bool)]
    assert torch.isfinite(finite).all()
    # float64 loop value of the far entry: log q(1|0)
    expected, _ = _cluster_loop(z.detach().double(), z.detach().double(),
                                kernel.prototypes.detach().double(), 0.02,
                                ~np.eye(4, dtype=bool))
    torch.testing.assert_close(log_q.detach().double()[0, 1], expected[0, 1].log(),
                               rtol=1e-5, atol=0)
    log_q.masked_fill(torch.eye(4, dtype=torch.bool), 0.0).sum().backward()
    assert torch.isfinite(z.grad).all() and torch.isfinite(kernel.prototypes.grad).all()


def test_cluster_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_clusters"):
        K.Cluster(1, 4)
    with pytest.raises(ValueError, match="dim"):
        K.Cluster(3, 0)
    with pytest.raises(ValueError, match="temperature"):
        K.Cluster(3, 4, temperature=0.0)


# ----------------------------------------------------------------------------------- debiasing


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("amount", [0.2, 0.6])
def test_debiased_supervisory_mixes_probabilities(form: str, amount: float) -> None:
    z1, z2 = _views(6, 3, 14)
    labels = torch.tensor([0, 1, 0, 1, 2, 2])
    nb = _nb(z1, z2, form, labels=labels)
    got = K.SameLabel().leak(amount)(nb).numpy()
    base = K.SameLabel()(nb).numpy()
    _, _, _, _, allowed = _layout(z1, z2, form)
    expected = (1 - amount) * base + amount * allowed / allowed.sum(1, keepdims=True)
    np.testing.assert_allclose(got, expected, atol=1e-15)
    assert (got[~allowed] == 0).all()


@pytest.mark.parametrize("form", FORMS)
def test_debiased_learned_mixes_probabilities_not_logs(form: str) -> None:
    amount, tau = 0.3, 0.4
    z1, z2 = _views(5, 3, 15)
    nb = _nb(z1, z2, form)
    kernel = K.Cosine(tau).leak(amount)
    assert kernel.temperature == tau
    anchors, candidates, _, _, allowed = _layout(z1, z2, form)
    q = _dense_learned(_cosine_scores(anchors, candidates) / tau, allowed)
    uniform = torch.tensor(allowed / allowed.sum(1, keepdims=True))
    torch.testing.assert_close(kernel(nb), (1 - amount) * q + amount * uniform, rtol=1e-12,
                               atol=1e-15)
    # the temperature override reaches the base kernel
    q2 = _dense_learned(_cosine_scores(anchors, candidates) / 0.25, allowed)
    torch.testing.assert_close(kernel(nb, 0.25), (1 - amount) * q2 + amount * uniform,
                               rtol=1e-12, atol=1e-15)
    # mixing logs instead would be a different (unnormalised) thing
    log_mixed = torch.exp((1 - amount) * torch.log(q) + amount * torch.log(uniform))
    assert not torch.allclose(kernel(nb), log_mixed, atol=1e-3)


def test_debias_zero_equals_no_debias_and_bad_amounts() -> None:
    z1, z2 = _views(5, 3, 16)
    nb = _nb(z1, z2, "symmetric")
    assert torch.equal(K.Cosine(0.5).leak(0.0).log_prob(nb), K.Cosine(0.5).log_prob(nb))
    assert torch.equal(K.Augmentation().leak(0.0).log_prob(nb), K.Augmentation().log_prob(nb))
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="debias"):
            K.Augmentation().leak(bad)


# ---------------------------------------------------------------------- precision and NaN-safety


@pytest.mark.parametrize("name", ["cosine", "gaussian", "student_t"])
def test_learned_kernels_bf16_inputs_computed_in_float32(name: str) -> None:
    make, _ = LEARNED[name]
    z1, z2 = _views(6, 8, 17, dtype=torch.float32)
    kernel = make()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = kernel.log_prob(_nb(z1.bfloat16(), z2.bfloat16(), "symmetric"))
    assert low.dtype == torch.float32
    exact = kernel.log_prob(_nb(z1.bfloat16().float(), z2.bfloat16().float(), "symmetric"))
    torch.testing.assert_close(low, exact)


@pytest.mark.parametrize("form", ["symmetric", "single"])
def test_masked_entries_give_no_nan_gradient(form: str) -> None:
    z1, z2 = _views(5, 3, 18, dtype=torch.float32)
    z1.requires_grad_(True)
    z2.requires_grad_(True)
    nb = _nb(z1, z2, form, labels=torch.tensor([0, 0, 1, 1, 2]))
    for kernel in (K.Cosine(0.02), K.GaussianEmbedding(0.05), K.StudentT()):
        log_q = kernel.log_prob(nb)
        assert torch.isneginf(log_q[~nb.mask]).all()
        # a reduction that touches the -inf entries only through exp
        (log_q.exp() * torch.randn_like(log_q)).sum().backward()
        assert torch.isfinite(z1.grad).all()
        if form == "symmetric":
            assert torch.isfinite(z2.grad).all()


@pytest.mark.parametrize(
    "make",
    [lambda: K.Cosine(0.5), lambda: K.StudentT(2.0, 0.7), lambda: K.Cosine(0.5).leak(0.2),
     lambda: K.Cluster(3, 3, 0.5).double()],
)
def test_log_probs_shares_scores_and_equals_log_prob_per_temperature(make) -> None:
    torch.manual_seed(19)
    kernel = make()
    z1, z2 = _views(5, 3, 19)
    nb = _nb(z1, z2, "symmetric")
    taus = [0.5, 0.45, 0.3]
    for got, tau in zip(kernel.log_probs(nb, taus), taus, strict=True):
        torch.testing.assert_close(got, kernel.log_prob(nb, tau), rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="temperature"):
        kernel.log_probs(nb, [0.5, -1.0])
