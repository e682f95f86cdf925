"""scikit-learn's ``sklearn/manifold/tests/test_t_sne.py``, ported to rkdo's API.

Written anew; each test's docstring names the scikit-learn test it mirrors. ``method="fft"``
stands where scikit-learn uses ``"barnes_hut"`` (rkdo's approximate t-SNE). Where rkdo follows
openTSNE instead (perplexity lowered, PCA init falling back to spectral), the test checks
rkdo's documented behaviour and says so. Tests of scikit-learn's private Cython helpers
(Barnes-Hut gradients, ``angle``) and of its ``trustworthiness`` function do not carry over.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn
from scipy.spatial.distance import pdist, squareform
from sklearn.datasets import make_blobs
from sklearn.manifold import trustworthiness
from sklearn.metrics import pairwise_distances
from sklearn.neighbors import NearestNeighbors

from rkdo.estimators import NeighbourEmbedding
from rkdo.estimators.affinities import PerplexityBased

SHORT = dict(max_iter=250, early_exaggeration_iter=100, random_state=0)


def _perplexities(matrix) -> np.ndarray:
    dense = matrix.toarray() if sp.issparse(matrix) else matrix
    safe = np.where(dense > 0, dense, 1.0)
    return np.exp(-(dense * np.log(safe)).sum(1))


def test_binary_search() -> None:
    """test_binary_search: every row's Gaussian reaches the desired perplexity."""
    data = np.random.RandomState(0).randn(50, 5)
    affinity = PerplexityBased(25.0, n_neighbors=None).fit(data)
    np.testing.assert_allclose(_perplexities(affinity.P_).mean(), 25.0, atol=1e-3)


def test_binary_search_underflow() -> None:
    """test_binary_search_underflow: points far from the origin (float32 underflow case)."""
    data = (np.random.RandomState(42).randn(91, 1) + 100).astype(np.float32)
    affinity = PerplexityBased(30.0, n_neighbors=None).fit(data)
    np.testing.assert_allclose(_perplexities(affinity.P_), 30.0, rtol=1e-3)


def test_binary_search_neighbors() -> None:
    """test_binary_search_neighbors: k-NN affinities with all n - 1 neighbours equal the dense
    ones, and with fewer neighbours the largest entries agree."""
    data = np.random.RandomState(0).randn(200, 2)
    dense = PerplexityBased(25.0, n_neighbors=None).fit(data).P_
    every = PerplexityBased(25.0, n_neighbors=199).fit(data).P_.toarray()
    np.testing.assert_allclose(every, dense, atol=1e-8)
    for k in (150, 175, 199):
        top = k * 10
        fewer = PerplexityBased(25.0, n_neighbors=k).fit(data).P_.toarray()
        np.testing.assert_allclose(np.sort(fewer.ravel())[::-1][:top],
                                   np.sort(dense.ravel())[::-1][:top], atol=1e-2)


def test_binary_perplexity_stability() -> None:
    """test_binary_perplexity_stability: repeated calibrations give the same P."""
    data = np.random.RandomState(0).randn(100, 5)
    first = PerplexityBased(3.0, n_neighbors=10).fit(data).P_.toarray()
    for _ in range(5):
        np.testing.assert_array_equal(PerplexityBased(3.0, n_neighbors=10).fit(data)
                                      .P_.toarray(), first)


def test_gradient_descent_stops() -> None:
    """test_gradient_descent_stops (through the public API): max_iter, min_grad_norm and
    n_iter_without_progress each end the descent, and n_iter_ says when."""
    x = np.random.RandomState(0).randn(40, 3)
    assert NeighbourEmbedding(perplexity=5, max_iter=120, early_exaggeration_iter=20,
                              random_state=0).fit(x).n_iter_ == 120
    assert NeighbourEmbedding(perplexity=5, max_iter=500, early_exaggeration_iter=20,
                              min_grad_norm=1e9, random_state=0).fit(x).n_iter_ == 21
    frozen = NeighbourEmbedding(perplexity=5, max_iter=5000, early_exaggeration_iter=20,
                                learning_rate=1e-300, n_iter_without_progress=100,
                                random_state=0).fit(x)
    assert frozen.n_iter_ < 5000


@pytest.mark.parametrize("method", ["exact", "fft"])
@pytest.mark.parametrize("init", ["random", "pca"])
def test_preserve_trustworthiness_approximately(method: str, init: str) -> None:
    """test_preserve_trustworthiness_approximately."""
    x = np.random.RandomState(0).randn(50, 2)
    embedded = NeighbourEmbedding(perplexity=10, init=init, method=method,
                                  **SHORT).fit_transform(x)
    assert trustworthiness(x, embedded, n_neighbors=1) > 0.85


def test_optimization_minimizes_kl_divergence() -> None:
    """test_optimization_minimizes_kl_divergence: more steps, lower KL."""
    x, _ = make_blobs(n_features=3, random_state=0)
    kls = [NeighbourEmbedding(perplexity=10, learning_rate=100.0, init="random", max_iter=it,
                              random_state=0).fit(x).kl_divergence_ for it in (250, 300, 350)]
    assert kls[1] <= kls[0] and kls[2] <= kls[1]


@pytest.mark.parametrize("method", ["exact", "fft"])
def test_fit_transform_csr_matrix(method: str) -> None:
    """test_fit_transform_csr_matrix."""
    rng = np.random.RandomState(0)
    x = rng.randn(50, 3)
    x[(rng.randint(0, 50, 25), rng.randint(0, 3, 25))] = 0.0
    embedded = NeighbourEmbedding(perplexity=10, learning_rate=100.0, method=method,
                                  **SHORT).fit_transform(sp.csr_matrix(x))
    assert trustworthiness(x, embedded, n_neighbors=1) > 0.85


def test_preserve_trustworthiness_approximately_with_precomputed_distances() -> None:
    """test_preserve_trustworthiness_approximately_with_precomputed_distances."""
    rng = np.random.RandomState(0)
    for _ in range(2):
        x = rng.randn(80, 2)
        distances = squareform(pdist(x))
        embedded = NeighbourEmbedding(perplexity=2, learning_rate=100.0, metric="precomputed",
                                      init="random", **SHORT).fit_transform(distances)
        assert trustworthiness(distances, embedded, n_neighbors=1, metric="precomputed") > .95


def test_trustworthiness_not_euclidean_metric() -> None:
    """test_trustworthiness_not_euclidean_metric: metric='cosine' is the same as precomputed
    cosine distances (same P, same KL)."""
    x = np.random.RandomState(0).randn(100, 2)
    by_name = NeighbourEmbedding(metric="cosine", init="random", **SHORT).fit(x)
    by_matrix = NeighbourEmbedding(metric="precomputed", init="random", **SHORT).fit(
        pairwise_distances(x, metric="cosine"))
    np.testing.assert_allclose(by_name.affinity_.P_, by_matrix.affinity_.P_, atol=1e-10)
    assert by_name.kl_divergence_ == pytest.approx(by_matrix.kl_divergence_, rel=0.05)


@pytest.mark.parametrize("distances, message", [
    (np.ones((5, 4)) - np.eye(5, 4), "square"),
    (np.array([[0.0, -1.0, 2.0, 1.0], [-1.0, 0.0, 1.0, 1.0], [2.0, 1.0, 0.0, 1.0],
               [1.0, 1.0, 1.0, 0.0]]), "negative"),
])
def test_bad_precomputed_distances(distances: np.ndarray, message: str) -> None:
    """test_bad_precomputed_distances (rkdo's wording)."""
    with pytest.raises(ValueError, match=message):
        NeighbourEmbedding(metric="precomputed", init="random", perplexity=1).fit(distances)


def test_high_perplexity_precomputed_sparse_distances() -> None:
    """test_high_perplexity_precomputed_sparse_distances, with openTSNE's semantics: a graph
    with too few neighbours for the perplexity lowers it (with a warning) instead of failing."""
    graph = NearestNeighbors(n_neighbors=3).fit(np.random.RandomState(0).randn(20, 2))
    graph = graph.kneighbors_graph(mode="distance")
    with pytest.warns(UserWarning, match="too large"):
        model = NeighbourEmbedding(metric="precomputed", init="random", max_iter=60,
                                   early_exaggeration_iter=10).fit(graph)
    assert model.effective_perplexity_ == pytest.approx(1.0)


def test_sparse_precomputed_distance() -> None:
    """test_sparse_precomputed_distance: a sparse k-NN distance graph gives the affinities of
    the same search on the data."""
    x = np.random.RandomState(0).randn(100, 2)
    graph = NearestNeighbors(n_neighbors=9).fit(x).kneighbors_graph(mode="distance")
    from_graph = PerplexityBased(3.0, metric="precomputed").fit(graph).P_.toarray()
    from_data = PerplexityBased(3.0).fit(x).P_.toarray()
    np.testing.assert_allclose(from_graph, from_data, atol=1e-10)


def test_non_positive_computed_distances() -> None:
    """test_non_positive_computed_distances: a metric giving negative values is refused."""
    def negative(a, b):
        return -1.0

    with pytest.raises(ValueError, match="negative"):
        NeighbourEmbedding(metric=negative, init="random", perplexity=1).fit(np.eye(6))


def test_init_ndarray() -> None:
    """test_init_ndarray: an array init is used as given."""
    start = np.random.RandomState(0).randn(30, 2)
    model = NeighbourEmbedding(init=start, max_iter=10, early_exaggeration_iter=5,
                               learning_rate=1e-12).fit(np.random.RandomState(1).randn(30, 4))
    np.testing.assert_allclose(model.embedding_, start, atol=1e-6)


def test_init_ndarray_precomputed() -> None:
    """test_init_ndarray_precomputed: an array init with precomputed distances."""
    distances = squareform(pdist(np.random.RandomState(0).randn(10, 2)))
    NeighbourEmbedding(init=np.zeros((10, 2)) + np.random.RandomState(2).randn(10, 2),
                       metric="precomputed", perplexity=3, max_iter=20,
                       early_exaggeration_iter=5).fit(distances)


def test_pca_initialization_not_compatible_with_precomputed_kernel() -> None:
    """test_pca_initialization_not_compatible_with_precomputed_kernel, with openTSNE's
    semantics: PCA needs features, so init falls back to spectral with a warning."""
    distances = squareform(pdist(np.random.RandomState(0).randn(20, 3)))
    with pytest.warns(UserWarning, match="spectral"):
        NeighbourEmbedding(metric="precomputed", init="pca", perplexity=5, max_iter=20,
                           early_exaggeration_iter=5).fit(distances)


def test_n_components_range() -> None:
    """test_n_components_range: the approximate method is 2-D only."""
    with pytest.raises(ValueError, match="n_components=2"):
        NeighbourEmbedding(n_components=3, method="fft").fit(np.random.RandomState(0).randn(
            20, 5))


def test_early_exaggeration_used() -> None:
    """test_early_exaggeration_used: exaggeration 1 and 10 give different embeddings."""
    x = np.random.RandomState(0).randn(25, 2).astype(np.float32)
    for method in ("exact", "fft"):
        params = dict(perplexity=1, learning_rate=100.0, init="pca", random_state=0,
                      method=method, max_iter=250)
        plain = NeighbourEmbedding(early_exaggeration=1.0, **params).fit_transform(x)
        strong = NeighbourEmbedding(early_exaggeration=10.0, **params).fit_transform(x)
        assert not np.allclose(plain, strong)


def test_max_iter_used() -> None:
    """test_max_iter_used: n_iter_ is max_iter when nothing stops earlier."""
    x = np.random.RandomState(0).randn(25, 2)
    for method in ("exact", "fft"):
        for max_iter in (251, 500):
            model = NeighbourEmbedding(perplexity=1, learning_rate=0.5, init="random",
                                       random_state=0, method=method, max_iter=max_iter).fit(x)
            assert model.n_iter_ == max_iter


def test_verbose(capsys) -> None:
    """test_verbose: verbose shows progress (a progress bar on stderr in rkdo)."""
    NeighbourEmbedding(verbose=True, perplexity=5, max_iter=60, early_exaggeration_iter=10,
                       random_state=0).fit(np.random.RandomState(0).randn(20, 2))
    assert "embedding" in capsys.readouterr().err


def test_chebyshev_metric() -> None:
    """test_chebyshev_metric: a non-Euclidean metric name works."""
    x = np.random.RandomState(0).randn(20, 3)
    NeighbourEmbedding(metric="chebyshev", perplexity=5, max_iter=60,
                       early_exaggeration_iter=10).fit(x)


def test_reduction_to_one_component() -> None:
    """test_reduction_to_one_component."""
    embedded = NeighbourEmbedding(n_components=1, perplexity=5, max_iter=60,
                                  early_exaggeration_iter=10).fit_transform(
        np.random.RandomState(0).randn(20, 2))
    assert embedded.shape == (20, 1) and np.all(np.isfinite(embedded))


@pytest.mark.parametrize("method", ["exact", "fft"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_64bit(method: str, dtype) -> None:
    """test_64bit, with scikit-learn's estimator convention instead of its Cython's: the
    output has the input's dtype (scikit-learn's TSNE always returns float32)."""
    x = np.random.RandomState(0).randn(10, 2).astype(dtype)
    embedded = NeighbourEmbedding(perplexity=2, learning_rate=100.0, random_state=0,
                                  method=method, max_iter=300, init="random").fit_transform(x)
    assert embedded.dtype == dtype


@pytest.mark.parametrize("method", ["exact", "fft"])
def test_kl_divergence_not_nan(method: str) -> None:
    """test_kl_divergence_not_nan: measured after the last step even when max_iter is not a
    multiple of the check interval."""
    model = NeighbourEmbedding(perplexity=2, learning_rate=100.0, random_state=0,
                               method=method, max_iter=503, init="random").fit(
        np.random.RandomState(0).randn(50, 2))
    assert np.isfinite(model.kl_divergence_)


def test_n_iter_without_progress() -> None:
    """test_n_iter_without_progress: no progress ends the run (reported in n_iter_)."""
    model = NeighbourEmbedding(n_iter_without_progress=2, learning_rate=1e-300,
                               early_exaggeration_iter=10, max_iter=1000, random_state=0).fit(
        np.random.RandomState(0).randn(100, 10))
    assert model.n_iter_ == 100 and "no progress" in model.stop_reason_


def test_min_grad_norm() -> None:
    """test_min_grad_norm: a large min_grad_norm stops at the first step it is checked."""
    model = NeighbourEmbedding(min_grad_norm=0.2, early_exaggeration_iter=10, max_iter=1000,
                               random_state=0).fit(np.random.RandomState(0).randn(100, 2))
    assert model.n_iter_ < 1000 and "min_grad_norm" in model.stop_reason_


def test_accessible_kl_divergence() -> None:
    """test_accessible_kl_divergence: kl_divergence_ is the KL of the final embedding (the
    last recorded one, up to the final step)."""
    model = NeighbourEmbedding(max_iter=200, early_exaggeration_iter=50, random_state=0,
                               perplexity=10).fit(np.random.RandomState(0).randn(100, 2))
    assert model.kl_divergence_ == pytest.approx(model.history_[-1]["kl"], rel=0.01)


def _uniform_grid_ok(y: np.ndarray) -> bool:
    distance = NearestNeighbors(n_neighbors=1).fit(y).kneighbors()[0].ravel()
    return (distance.min() > 0.1 and distance.min() / distance.mean() > 0.5
            and distance.max() / distance.mean() < 2)


@pytest.mark.parametrize("method", ["exact", "fft"])
def test_uniform_grid(method: str) -> None:
    """test_uniform_grid: a uniform 2-D grid is recovered with near-constant nearest-neighbour
    distances (rerun from the result once, as scikit-learn does)."""
    grid = np.stack(np.meshgrid(np.arange(10.0), np.arange(10.0)), -1).reshape(-1, 2)
    params = dict(init="random", random_state=0, perplexity=50, max_iter=500, method=method)
    y = NeighbourEmbedding(**params).fit_transform(grid)
    if not _uniform_grid_ok(y):
        y = NeighbourEmbedding(**{**params, "init": y}).fit_transform(grid)
    assert _uniform_grid_ok(y)


def test_bh_match_exact() -> None:
    """test_bh_match_exact: with every pair among the neighbours, the approximate solver's
    objective equals the exact one at the same embedding (scikit-learn compares whole runs,
    which Barnes-Hut at angle 0 reproduces bit for bit; interpolation does not)."""
    x = np.random.RandomState(0).randn(20, 2)
    exact = NeighbourEmbedding(method="exact", init="random", random_state=0, perplexity=6,
                               max_iter=300).fit(x)
    frozen = dict(init=exact.embedding_, learning_rate=1e-300, max_iter=2,
                  early_exaggeration_iter=1, perplexity=6)
    fft = NeighbourEmbedding(method="fft", **frozen).fit(x)
    assert fft.kl_divergence_ == pytest.approx(exact.kl_divergence_, abs=1e-4)


@pytest.mark.parametrize("metric", ["manhattan", "cosine"])
@pytest.mark.parametrize("method", ["exact", "fft"])
def test_tsne_with_different_distance_metrics(metric: str, method: str) -> None:
    """test_tsne_with_different_distance_metrics: a metric name and its precomputed distance
    matrix give the same P and the same KL."""
    x = np.random.RandomState(0).randn(50, 2)
    params = dict(method=method, init="random", random_state=0, max_iter=300, perplexity=10)
    by_name = NeighbourEmbedding(metric=metric, **params).fit(x)
    by_matrix = NeighbourEmbedding(metric="precomputed", **params).fit(
        pairwise_distances(x, metric=metric))
    left, right = by_name.affinity_.P_, by_matrix.affinity_.P_
    np.testing.assert_allclose(sp.csr_matrix(left).toarray(), sp.csr_matrix(right).toarray(),
                               atol=1e-10)
    assert by_name.kl_divergence_ == pytest.approx(by_matrix.kl_divergence_, rel=0.05)


@pytest.mark.parametrize("method", [
    pytest.param("exact", marks=pytest.mark.xfail(strict=True, reason=(
        "torch's reductions depend on the thread count and t-SNE amplifies the last bits; "
        "documented in NeighbourEmbedding's docstring"))),
    "fft"])
def test_tsne_n_jobs(method: str) -> None:
    """test_tsne_n_jobs: n_jobs does not change the result."""
    x = np.random.RandomState(0).randn(30, 10)
    params = dict(method=method, perplexity=9.0, random_state=0, init="random")
    one = NeighbourEmbedding(n_jobs=1, **params).fit_transform(x)
    two = NeighbourEmbedding(n_jobs=2, **params).fit_transform(x)
    np.testing.assert_allclose(one, two, rtol=1e-5, atol=1e-5)


def test_tsne_with_mahalanobis_distance() -> None:
    """test_tsne_with_mahalanobis_distance: metric_params reach the metric."""
    x = np.random.RandomState(0).randn(100, 10)
    params = dict(perplexity=20, max_iter=250, init="random", n_components=3, random_state=0)
    # scipy's default V is the data's covariance (scikit-learn's k-NN search demands V)
    default = NeighbourEmbedding(metric="mahalanobis", **params).fit(x)
    by_name = NeighbourEmbedding(metric="mahalanobis", metric_params={"V": np.cov(x.T)},
                                 **params).fit(x)
    by_matrix = NeighbourEmbedding(metric="precomputed", **params).fit(
        squareform(pdist(x, metric="mahalanobis")))
    np.testing.assert_allclose(by_name.affinity_.P_, by_matrix.affinity_.P_, atol=1e-8)
    np.testing.assert_allclose(default.affinity_.P_, by_matrix.affinity_.P_, atol=1e-8)


@pytest.mark.parametrize("perplexity", [20, 30])
def test_tsne_perplexity_validation(perplexity: float) -> None:
    """test_tsne_perplexity_validation, with openTSNE's semantics: a perplexity too large for
    n is lowered to (n - 1) / 3 with a warning, not refused."""
    x = np.random.RandomState(0).randn(20, 2)
    with pytest.warns(UserWarning, match="too large"):
        model = NeighbourEmbedding(perplexity=perplexity, max_iter=60,
                                   early_exaggeration_iter=10, random_state=0).fit(x)
    assert model.effective_perplexity_ == pytest.approx(19 / 3)


def test_tsne_works_with_pandas_output() -> None:
    """test_tsne_works_with_pandas_output."""
    pytest.importorskip("pandas")
    with sklearn.config_context(transform_output="pandas"):
        NeighbourEmbedding(perplexity=5, max_iter=60, early_exaggeration_iter=10).fit(
            np.random.RandomState(0).randn(20, 3))
