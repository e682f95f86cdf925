"""scikit-learn's ``sklearn/cluster/tests/test_k_means.py``, the tests whose meaning carries over
to :class:`~rkdo.estimators.KernelClustering`, written anew for its API.

Each test names the peer test it mirrors. Where KMeans asserts an exact number (inertia, a
Lloyd iteration, the iteration count of a toy problem) this file asserts the property the number
stands for (labels up to a permutation, weighted member means, a monotone objective), since the
objective is a different function. Not carried over, and why:

- ``test_relocate_empty_clusters``, ``test_minibatch_update_consistency``,
  ``test_euclidean_distance``, ``test_inertia``, ``test_is_same_clustering``: private Cython
  helpers of KMeans.
- ``test_kmeans_elkan_results``, ``test_kmeans_wrong_params`` (``algorithm``): Lloyd vs Elkan;
  there is one algorithm here.
- ``test_kmeans_relocated_clusters``, ``test_kmeans_init_fitted_centers``,
  ``test_centers_not_mutated``, ``test_warning_n_init_precomputed_centers``,
  ``test_k_means_1_iteration``: an explicit array of initial centres; the start here is the
  graph's spectral embedding or a random network, not centres.
- ``test_kmeans_empty_cluster_relocated``: two points form a k-NN graph linking them, so the
  objective rightly puts them in one cluster (and warns); KMeans' answer (two clusters) is
  an artefact of its relocation rule.
- ``test_k_means_function``: there is no functional entry point (``k_means``).
- Every ``test_minibatch_*`` test: MiniBatchKMeans' reassignment, ``init_size`` and
  ``partial_fit`` have no counterpart (minibatches here are an inner detail, ``batch_size``).
- ``test_precompute_distance_deprecated``, ``test_n_jobs_deprecated``,
  ``test_warning_elkan_1_cluster``: deprecations and warnings of KMeans-only parameters.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import v_measure_score

from rkdo.estimators import KernelClustering

CENTERS = np.array([[0.0, 5.0, 0.0, 0.0, 0.0],
                    [1.0, 1.0, 4.0, 0.0, 0.0],
                    [1.0, 0.0, 0.0, 5.0, 1.0]])
N_SAMPLES = 100
N_CLUSTERS, N_FEATURES = CENTERS.shape
X, TRUE_LABELS = make_blobs(n_samples=N_SAMPLES, centers=CENTERS, cluster_std=1.0,
                            random_state=42)
X_CSR = sp.csr_matrix(X)
DATA = pytest.mark.parametrize("data", [X, X_CSR], ids=["dense", "sparse"])


def _model(**params) -> KernelClustering:
    """A fast configuration: few epochs, a small network, one restart."""
    settings = dict(n_clusters=N_CLUSTERS, max_iter=30, n_init=1, hidden_layer_sizes=(32,),
                    random_state=0)
    settings.update(params)
    return KernelClustering(**settings)


def _check_fitted_model(model: KernelClustering) -> None:
    assert model.cluster_centers_.shape == (N_CLUSTERS, N_FEATURES)
    assert len(np.unique(model.labels_)) == N_CLUSTERS
    assert v_measure_score(TRUE_LABELS, model.labels_) == pytest.approx(1.0)
    assert np.isfinite(model.objective_)


def _weighted_means(x: np.ndarray, labels: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return np.stack([np.average(x[labels == c], axis=0, weights=weight[labels == c])
                     for c in np.unique(labels)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("constructor", [np.array, sp.csr_matrix], ids=["dense", "sparse"])
def test_kmeans_results(constructor, dtype) -> None:
    """Mirrors ``test_kmeans_results``: the weighted toy problem, labels up to a permutation,
    centres the weighted means of the members, in the input dtype."""
    x = constructor(np.array([[0, 0], [0.5, 0], [0.5, 1], [1, 1]], dtype=dtype))
    weight = np.array([3.0, 1.0, 1.0, 3.0])
    model = _model(n_clusters=2, n_neighbors=1).fit(x, sample_weight=weight)
    assert v_measure_score([0, 0, 1, 1], model.labels_) == pytest.approx(1.0)
    order = np.argsort(model.cluster_centers_[:, 0])
    np.testing.assert_allclose(model.cluster_centers_[order], [[0.125, 0], [0.875, 1]],
                               rtol=1e-6)
    assert model.cluster_centers_.dtype == dtype


def test_kmeans_convergence() -> None:
    """Mirrors ``test_kmeans_convergence``: with ``tol=0`` the fit stops once no label moves,
    before ``max_iter``."""
    x = np.random.RandomState(0).normal(size=(500, 10))
    model = _model(n_clusters=5, tol=0.0, max_iter=300).fit(x)
    assert model.n_iter_ < 300
    assert len(model.loss_curve_) == model.n_iter_


@DATA
@pytest.mark.parametrize("init", ["spectral", "random"])
def test_all_init(data, init) -> None:
    """Mirrors ``test_all_init``: every start recovers the blobs, dense or sparse."""
    n_init = 1 if init == "spectral" else 3
    _check_fitted_model(_model(init=init, n_init=n_init, max_iter=60).fit(data))


def test_fortran_aligned_data() -> None:
    """Mirrors ``test_fortran_aligned_data``: memory order changes nothing."""
    c_order = _model().fit(X)
    f_order = _model().fit(np.asfortranarray(X))
    np.testing.assert_array_equal(c_order.labels_, f_order.labels_)
    np.testing.assert_allclose(c_order.cluster_centers_, f_order.cluster_centers_)


@pytest.mark.parametrize("constructor", [np.asarray, sp.csr_matrix], ids=["dense", "sparse"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("max_iter, tol", [(2, 1e-7), (30, 1e-1)])
def test_k_means_fit_predict(constructor, dtype, max_iter, tol) -> None:
    """Mirrors ``test_k_means_fit_predict``: ``fit(X).predict(X)`` equals ``fit_predict(X)``,
    converged or not."""
    x = make_blobs(n_samples=300, n_features=10, centers=10, random_state=1)[0]
    x = constructor(x.astype(dtype))
    model = _model(n_clusters=10, max_iter=max_iter, tol=tol)
    first = model.fit(x).predict(x)
    second = model.fit_predict(x)
    np.testing.assert_array_equal(first, second)


def test_kmeans_verbose(capsys) -> None:
    """Mirrors ``test_kmeans_verbose``: ``verbose`` reports progress, silence otherwise."""
    _model(verbose=False).fit(X)
    assert capsys.readouterr().err == ""
    _model(verbose=True).fit(X)
    assert "clustering" in capsys.readouterr().err


def test_score_max_iter() -> None:
    """Mirrors ``test_score_max_iter``: more iterations give a better (higher) score."""
    x = np.random.RandomState(0).randn(100, 10)
    short = _model(max_iter=1, tol=0.0, init="random").fit(x).score(x)
    longer = _model(max_iter=30, tol=0.0, init="random").fit(x).score(x)
    assert longer > short


@DATA
def test_predict(data) -> None:
    """Mirrors ``test_predict``: ``predict`` on the training data gives ``labels_``, refitting
    gives them again, and each centre is predicted to be in its own cluster."""
    x, _ = make_blobs(n_samples=300, n_features=10, centers=10, random_state=0)
    x = data.__class__(x) if sp.issparse(data) else x
    model = _model(n_clusters=10, max_iter=60).fit(x)
    np.testing.assert_array_equal(model.predict(x), model.labels_)
    np.testing.assert_array_equal(model.fit_predict(x), model.labels_)
    np.testing.assert_array_equal(model.predict(model.cluster_centers_), np.arange(10))


def test_dense_sparse() -> None:
    """Mirrors ``test_dense_sparse``: dense and sparse inputs, with weights, give one result."""
    weight = np.random.RandomState(0).random_sample(N_SAMPLES)
    dense = _model().fit(X, sample_weight=weight)
    sparse = _model().fit(X_CSR, sample_weight=weight)
    np.testing.assert_array_equal(dense.labels_, sparse.labels_)
    np.testing.assert_allclose(dense.cluster_centers_, sparse.cluster_centers_)


def test_predict_dense_sparse() -> None:
    """Mirrors ``test_predict_dense_sparse``: fitted on one layout, predicts on the other."""
    model = _model()
    model.fit(X_CSR)
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    model.fit(X)
    np.testing.assert_array_equal(model.predict(X_CSR), model.labels_)


@pytest.mark.parametrize("constructor", [np.array, sp.csr_matrix], ids=["dense", "sparse"])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_integer_input(constructor, dtype) -> None:
    """Mirrors ``test_integer_input``: integers are read as float64, and the two groups found."""
    x = constructor(np.array([[0, 0], [10, 10], [12, 9], [-1, 1], [2, 0], [8, 10]]),
                    dtype=dtype)
    model = _model(n_clusters=2, n_neighbors=2).fit(x)
    assert model.cluster_centers_.dtype == np.float64
    assert v_measure_score([0, 1, 1, 0, 0, 1], model.labels_) == pytest.approx(1.0)


def test_transform() -> None:
    """Mirrors ``test_transform``: ``transform`` is the soft assignment here (KMeans gives
    distances): one column per cluster, rows summing to one, its argmax the prediction."""
    model = _model().fit(X)
    soft = model.transform(X)
    assert soft.shape == (N_SAMPLES, N_CLUSTERS)
    np.testing.assert_allclose(soft.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(soft.argmax(1), model.labels_)


def test_fit_transform() -> None:
    """Mirrors ``test_fit_transform``: ``fit(X).transform(X)`` equals ``fit_transform(X)``."""
    np.testing.assert_allclose(_model().fit(X).transform(X), _model().fit_transform(X))


def test_n_init() -> None:
    """Mirrors ``test_n_init``: more restarts never give a worse kept objective."""
    previous = np.inf
    for n_init in (1, 3, 5):
        model = _model(n_init=n_init, max_iter=2, init="random").fit(X)
        assert model.objective_ <= previous
        previous = model.objective_


@DATA
def test_float_precision(data) -> None:
    """Mirrors ``test_float_precision``: float32 and float64 inputs give the same labels, and
    centres in the input's dtype that agree to float32 precision."""
    fitted = {}
    for dtype in (np.float64, np.float32):
        model = _model().fit(data.astype(dtype))
        assert model.cluster_centers_.dtype == dtype
        fitted[dtype] = (model.labels_, model.cluster_centers_, model.transform(data))
    np.testing.assert_array_equal(fitted[np.float32][0], fitted[np.float64][0])
    np.testing.assert_allclose(fitted[np.float32][1], fitted[np.float64][1], rtol=1e-5)
    np.testing.assert_allclose(fitted[np.float32][2], fitted[np.float64][2], atol=1e-4)


def test_kmeans_warns_less_centers_than_unique_points() -> None:
    """Mirrors ``test_kmeans_warns_less_centers_than_unique_points``: a duplicate point leaves a
    cluster empty, which is reported by a ConvergenceWarning."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 0]], dtype=float)
    with pytest.warns(ConvergenceWarning, match="found [0-3] distinct clusters of the 4"):
        model = _model(n_clusters=4, n_neighbors=1).fit(x)
    assert model.labels_[2] == model.labels_[3]


def test_n_neighbors_clipped_warns() -> None:
    """The issue's companion to the previous test: ``n_neighbors >= n`` warns (KMeans has no
    graph; silence here would hide a graph without information)."""
    x = np.random.RandomState(0).normal(size=(6, 2))
    with pytest.warns(UserWarning, match="n_neighbors = 10 exceeds n_samples - 1 = 5"):
        _model(n_clusters=2, n_neighbors=10).fit(x)


def test_weighted_vs_repeated() -> None:
    """Mirrors ``test_weighted_vs_repeated``: an integer weight partitions like repeating the
    point (up to a permutation; the graph differs, so only the partition is compared), and the
    centres match."""
    weight = np.random.RandomState(0).randint(1, 5, size=N_SAMPLES)
    weighted = _model().fit(X, sample_weight=weight)
    repeated = _model().fit(np.repeat(X, weight, axis=0))
    assert v_measure_score(repeated.labels_, np.repeat(weighted.labels_, weight)) == \
        pytest.approx(1.0)
    np.testing.assert_allclose(np.sort(weighted.cluster_centers_, axis=0),
                               np.sort(repeated.cluster_centers_, axis=0), rtol=1e-6)
    np.testing.assert_allclose(weighted.cluster_centers_,
                               _weighted_means(X, weighted.labels_, weight), rtol=1e-6)


@DATA
def test_unit_weights_vs_no_weights(data) -> None:
    """Mirrors ``test_unit_weights_vs_no_weights``: weights of one change nothing."""
    unweighted = _model().fit(data)
    ones = _model().fit(data, sample_weight=np.ones(N_SAMPLES))
    np.testing.assert_array_equal(unweighted.labels_, ones.labels_)
    np.testing.assert_allclose(unweighted.cluster_centers_, ones.cluster_centers_)


@DATA
def test_scaled_weights(data) -> None:
    """Mirrors ``test_scaled_weights``: scaling every weight by one factor changes nothing."""
    weight = np.random.RandomState(0).uniform(0.5, 2.0, size=N_SAMPLES)
    original = _model().fit(data, sample_weight=weight)
    scaled = _model().fit(data, sample_weight=0.5 * weight)
    np.testing.assert_array_equal(original.labels_, scaled.labels_)
    np.testing.assert_allclose(original.cluster_centers_, scaled.cluster_centers_, rtol=1e-6)


def test_kmeans_elkan_iter_attribute() -> None:
    """Mirrors ``test_kmeans_elkan_iter_attribute``: ``max_iter=1`` gives ``n_iter_ == 1``."""
    assert _model(max_iter=1).fit(X).n_iter_ == 1


def test_result_equal_in_diff_n_threads() -> None:
    """Mirrors ``test_result_equal_in_diff_n_threads``: one or two threads, one partition."""
    x = np.random.RandomState(0).normal(size=(50, 10))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = _model().fit(x).labels_
        torch.set_num_threads(2)
        double = _model().fit(x).labels_
    finally:
        torch.set_num_threads(threads)
    assert v_measure_score(single, double) == pytest.approx(1.0)


def test_sample_weight_unchanged() -> None:
    """Mirrors ``test_sample_weight_unchanged``: the weights are not modified in place."""
    weight = np.array([0.5, 0.2, 0.3])
    _model(n_clusters=2, n_neighbors=1).fit(np.array([[1.0], [2.0], [4.0]]),
                                            sample_weight=weight)
    np.testing.assert_array_equal(weight, [0.5, 0.2, 0.3])


def test_kmeans_copyx() -> None:
    """Mirrors ``test_kmeans_copyx``: fitting leaves ``X`` as it was (no in-place centring)."""
    mine = X.copy()
    _model().fit(mine)
    np.testing.assert_array_equal(mine, X)


def test_predict_does_not_change_cluster_centers() -> None:
    """Mirrors ``test_predict_does_not_change_cluster_centers``: ``predict`` is read-only."""
    model = _model().fit(X_CSR)
    before = model.cluster_centers_.copy()
    model.predict(X_CSR)
    np.testing.assert_array_equal(model.cluster_centers_, before)


def test_feature_names_out() -> None:
    """Mirrors ``test_feature_names_out``: one output name per cluster, prefixed by the class."""
    model = _model().fit(X)
    names = model.get_feature_names_out()
    np.testing.assert_array_equal(names, [f"kernelclustering{c}" for c in range(N_CLUSTERS)])


@pytest.mark.parametrize("params, match", [
    ({"n_init": 0}, "n_init must be an integer >= 1"),
    ({"n_init": "many"}, "n_init must be an integer >= 1, got 'many'"),
    ({"shared_neighbors": -1.0}, "shared_neighbors must be a finite number >= 0"),
    ({"max_iter": 0}, "max_iter must be an integer >= 1"),
    ({"n_clusters": N_SAMPLES + 1}, f"n_clusters must be <= n_samples = {N_SAMPLES}"),
    ({"tol": -1.0}, "tol must be a finite number >= 0"),
    ({"batch_size": 1}, "batch_size must be an integer >= 2"),
    ({"init": "k-means++"}, "unknown init 'k-means\\+\\+'"),
])
def test_wrong_params(params, match) -> None:
    """Mirrors ``test_wrong_params``: a bad parameter fails in ``fit`` with a message naming
    it and its range."""
    with pytest.raises(ValueError, match=match):
        clone(_model()).set_params(**params).fit(X)
