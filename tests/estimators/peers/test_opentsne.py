"""openTSNE's ``tests/test_tsne.py``, ``test_affinities.py`` and ``test_correctness.py``,
ported to rkdo's API.

Written anew; each test's docstring names the openTSNE test (``file::Class::test``) it mirrors.
rkdo's estimator is scikit-learn shaped: ``fit`` then ``transform`` stand for openTSNE's
``TSNE.fit`` / ``TSNEEmbedding.transform``, affinity objects take ``X`` in ``fit`` rather than
in the constructor, and ``method="fft"`` is openTSNE's default gradient. openTSNE's staged
optimisation API (``prepare_initial``, ``optimize(inplace=...)``, optimizer objects), its
``Multiscale`` affinities, ``knn_index`` / ``knn_kwargs`` and the mock-based parameter-flow
tests have no counterpart and are listed as not carried over in the closing note.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.spatial.distance import pdist, squareform
from sklearn import datasets
from sklearn.manifold import SpectralEmbedding
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.neighbors import KNeighborsClassifier

from rkdo.estimators import NeighbourEmbedding
from rkdo.estimators.affinities import (
    PerplexityBased,
    PrecomputedAffinities,
    Uniform,
    joint,
)

QUICK = dict(max_iter=150, early_exaggeration_iter=50, random_state=0)


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    return datasets.load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def two_modes() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(0)
    x = np.vstack((rng.normal(1, 1, (100, 4)), rng.normal(-1, 1, (100, 4))))
    return x, rng.normal(0, 1, (25, 4))


def _accuracy(train, labels, test, test_labels) -> float:
    return KNeighborsClassifier(10).fit(train, labels).score(test, test_labels)


# -- test_affinities.py ----------------------------------------------------------------------

def test_doesnt_change_perplexity_parameter_value() -> None:
    """test_affinities::TestPerplexityBased::test_doesnt_change_perplexity_parameter_value"""
    x = np.random.RandomState(0).normal(0, 1, (91, 5))
    with pytest.warns(UserWarning, match="too large"):
        affinity = PerplexityBased(140).fit(x)
    assert affinity.perplexity == 140 and affinity.effective_perplexity_ == 30


def test_handles_reducing_perplexity_value() -> None:
    """test_affinities::TestPerplexityBased::test_handles_reducing_perplexity_value (refit at
    the lower perplexity: rkdo has no set_perplexity)"""
    x = np.random.RandomState(0).normal(0, 1, (200, 5))
    for perplexity in (20, 10):
        affinity = PerplexityBased(perplexity).fit(x)
        assert affinity.effective_perplexity_ == perplexity
        assert joint(affinity.P_, affinity.kind).nnz >= 200 * 3 * perplexity


def test_uniform_all_unsymmetrized_values_the_same() -> None:
    """test_affinities::TestUniform::test_all_unsymmetrized_values_the_same"""
    values = Uniform(10).fit(np.random.RandomState(0).normal(0, 1, (100, 4))).P_.data
    np.testing.assert_allclose(values, values[0])


def test_uniform_to_new_all_equal() -> None:
    """test_affinities::TestUniform::test_to_new_all_equal"""
    rng = np.random.RandomState(0)
    new = Uniform(10).fit(rng.normal(0, 1, (100, 4))).to_new(rng.normal(0, 1, (20, 4)))
    np.testing.assert_allclose(new.data, new.data[0])
    np.testing.assert_allclose(np.asarray(new.sum(axis=1)).ravel(), 1.0)


def test_uniform_symmetrize_mean_has_two_distinct_values() -> None:
    """test_affinities::TestUniform::test_symmetrize_mean_has_two_distinct_values"""
    affinity = Uniform(10).fit(np.random.RandomState(0).normal(0, 1, (100, 4)))
    assert len(np.unique(joint(affinity.P_, affinity.kind).data)) == 2


@pytest.mark.parametrize("affinity", [PerplexityBased(), Uniform()])
def test_that_regular_matrix_sums_to_one(iris, affinity) -> None:
    """test_affinities::TestAffinityMatrixCorrectness::test_that_regular_matrix_sums_to_one"""
    fitted = affinity.fit(iris[0])
    assert joint(fitted.P_, fitted.kind).sum() == pytest.approx(1.0)


@pytest.mark.parametrize("affinity", [PerplexityBased(), Uniform()])
def test_to_new_treats_each_datapoint_separately(iris, affinity) -> None:
    """test_affinities::TestAffinityMatrixCorrectness::
    test_that_to_new_transform_matrix_treats_each_datapoint_separately"""
    train, test = train_test_split(iris[0], test_size=0.33, random_state=42)
    new = affinity.fit(train).to_new(test)
    np.testing.assert_allclose(np.asarray(new.sum(axis=1)).ravel(), 1.0)
    alone = sp.vstack([affinity.to_new(test[i:i + 1]) for i in range(5)]).toarray()
    np.testing.assert_allclose(alone, new[:5].toarray())


def test_handles_precomputed_distance_matrices() -> None:
    """test_affinities::TestAffinityMatrixCorrectness::test_handles_precomputed_distance_matrices"""
    x = np.random.RandomState(0).normal(0, 1, (200, 5))
    affinity = PerplexityBased(30, metric="precomputed").fit(squareform(pdist(x)))
    assert affinity.P_.shape == (200, 200)


@pytest.mark.parametrize("data", ["random", "iris"])
def test_affinity_matrix_matches_precomputed_distance_affinity_matrix(iris, data) -> None:
    """test_affinities::TestAffinityMatrixCorrectness::
    test_affinity_matrix_matches_precomputed_distance_affinity_matrix_random / _iris"""
    x = np.random.RandomState(0).normal(0, 1, (200, 5)) if data == "random" else iris[0]
    from_data = PerplexityBased(30).fit(x).P_.toarray()
    from_distances = PerplexityBased(30, metric="precomputed").fit(squareform(pdist(x)))
    # iris has tied distances: the k-th neighbour may differ between searches, its value not
    np.testing.assert_allclose(np.sort(from_data, axis=1),
                               np.sort(from_distances.P_.toarray(), axis=1), atol=1e-10)


def test_precomputed_affinity_matches_and_is_normalised() -> None:
    """test_affinities::TestPrecomputedAffinity::test_precomputed_affinity_matches and
    ::test_precomputed_affinity_normalization"""
    x = np.random.RandomState(0).normal(0, 1, (100, 4))
    reference = joint(PerplexityBased(20).fit(x).P_, "conditional")
    np.testing.assert_allclose(PrecomputedAffinities(reference).fit().P_.toarray(),
                               reference.toarray(), atol=1e-12)
    scaled = PrecomputedAffinities(reference * 7.0).fit()
    assert scaled.P_.sum() == pytest.approx(1.0)


def test_call_with_custom_metric() -> None:
    """test_affinities::TestGenericAffinity::test_call_with_custom_metric"""
    x = np.random.RandomState(0).normal(0, 1, (100, 4))

    def manhattan(a, b):
        return np.abs(a - b).sum()

    custom = PerplexityBased(10, metric=manhattan).fit(x).P_.toarray()
    named = PerplexityBased(10, metric="manhattan").fit(x).P_.toarray()
    np.testing.assert_allclose(custom, named, atol=1e-10)


# -- test_tsne.py ----------------------------------------------------------------------------

def test_raises_error_on_unrecognized_metric() -> None:
    """test_tsne::TestTSNEParameterFlow::test_raises_error_on_unrecognized_metric"""
    with pytest.raises(ValueError, match="unknown metric"):
        NeighbourEmbedding(metric="imaginary").fit(np.ones((10, 2)) + np.eye(10, 2))


def test_can_pass_callbacks_to_tsne_object(two_modes) -> None:
    """test_tsne::TestTSNECallbackParams::test_can_pass_callbacks_to_tsne_object"""
    calls: list[int] = []
    NeighbourEmbedding(callbacks=[lambda it, kl, emb: calls.append(it)], **QUICK).fit(
        two_modes[0])
    assert calls == [50, 100, 150]


def test_fails_if_no_parameters_specified() -> None:
    """test_tsne::TestAlternativeFitUsageWithAffinityAndInitialization::
    test_fails_if_no_parameters_specified"""
    with pytest.raises(ValueError, match="fit needs X"):
        NeighbourEmbedding().fit()


def test_precomputed_affinity_is_used(two_modes) -> None:
    """...::test_precomputed_affinity_is_passed_to_embedding_object"""
    affinity = PerplexityBased(10).fit(two_modes[0])
    model = NeighbourEmbedding(init="random", **QUICK).fit(affinities=affinity)
    assert model.affinity_ is affinity


def test_fails_if_affinities_parameter_is_not_correct_class(two_modes) -> None:
    """...::test_fails_if_affinities_parameter_is_not_correct_class"""
    with pytest.raises(ValueError, match="affinity object"):
        NeighbourEmbedding().fit(two_modes[0], affinities=np.eye(200))


def test_precomputed_initialization_is_used(two_modes) -> None:
    """...::test_precomputed_initialization_is_passed_to_embedding_object"""
    start = np.random.RandomState(1).normal(0, 1e-4, (200, 2))
    model = NeighbourEmbedding(init=start, learning_rate=1e-300, max_iter=2,
                               early_exaggeration_iter=1).fit(two_modes[0])
    np.testing.assert_allclose(model.embedding_, start)


def test_pca_init_with_only_affinities_passed(two_modes) -> None:
    """...::test_pca_init_with_only_affinities_passed (falls back to spectral)"""
    affinity = PerplexityBased(10).fit(two_modes[0])
    with pytest.warns(UserWarning, match="spectral"):
        NeighbourEmbedding(init="pca", **QUICK).fit(affinities=affinity)


@pytest.mark.parametrize("init", ["random", "pca", "spectral"])
def test_low_variance(two_modes, init: str) -> None:
    """test_tsne::TSNEInitialization::test_low_variance (the start, seen through a frozen
    run)"""
    model = NeighbourEmbedding(init=init, perplexity=2, learning_rate=1e-300, max_iter=2,
                               early_exaggeration_iter=1).fit(two_modes[0])
    assert np.all(np.var(model.embedding_, axis=0) < 1e-3)


def test_mismatching_embedding_dimensions_simple_api(two_modes) -> None:
    """test_tsne::TSNEInitialization::test_mismatching_embedding_dimensions_simple_api"""
    with pytest.raises(ValueError, match="shape"):
        NeighbourEmbedding(n_components=2, init=np.zeros((200, 3))).fit(two_modes[0])


@pytest.mark.parametrize("init", ["random", "pca"])
def test_same_results_on_fixed_random_state(two_modes, init: str) -> None:
    """test_tsne::TestRandomState::test_same_results_on_fixed_random_state_random_init /
    _pca_init"""
    first = NeighbourEmbedding(init=init, **QUICK).fit_transform(two_modes[0])
    second = NeighbourEmbedding(init=init, **QUICK).fit_transform(two_modes[0])
    np.testing.assert_array_equal(first, second)


def test_same_partial_embedding_on_fixed_random_state(two_modes) -> None:
    """test_tsne::TestRandomState::test_same_partial_embedding_on_fixed_random_state"""
    model = NeighbourEmbedding(**QUICK).fit(two_modes[0])
    np.testing.assert_array_equal(model.transform(two_modes[1]),
                                  model.transform(two_modes[1]))


def test_pickling_with_transform(two_modes) -> None:
    """test_tsne::TestTSNEEmebedding::test_pickling and ::test_pickling_with_transform"""
    model = NeighbourEmbedding(**QUICK).fit(two_modes[0])
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.embedding_, model.embedding_)
    np.testing.assert_array_equal(restored.transform(two_modes[1]),
                                  model.transform(two_modes[1]))


@pytest.mark.parametrize("affinity", [PerplexityBased(10), Uniform(10)])
def test_transform_with_standard_and_nonstandard_affinity(two_modes, affinity) -> None:
    """test_tsne::TestAffinityIntegration::test_transform_with_standard_affinity and
    ::test_transform_with_nonstandard_affinity"""
    model = NeighbourEmbedding(affinity=affinity, **QUICK).fit(two_modes[0])
    placed = model.transform(two_modes[1])
    assert placed.shape == (25, 2) and np.all(np.isfinite(placed))


def test_precomputed_dist_matrix_uses_spectral_init(two_modes) -> None:
    """test_tsne::TestPrecomputedDistanceMatrices::
    test_precomputed_dist_matrix_via_tsne_interface_uses_spectral_init (and _via_affinities)"""
    distances = squareform(pdist(two_modes[0]))
    frozen = dict(learning_rate=1e-300, max_iter=2, early_exaggeration_iter=1, perplexity=10)
    with pytest.warns(UserWarning, match="spectral"):
        default = NeighbourEmbedding(metric="precomputed", **frozen).fit(distances)
    spectral = NeighbourEmbedding(metric="precomputed", init="spectral", **frozen).fit(
        distances)
    np.testing.assert_allclose(default.embedding_, spectral.embedding_)


def test_precomputed_dist_matrix_doesnt_override_valid_inits(two_modes) -> None:
    """test_tsne::TestPrecomputedDistanceMatrices::test_precomputed_dist_matrix_doesnt_
    override_valid_inits"""
    distances = squareform(pdist(two_modes[0]))
    frozen = dict(learning_rate=1e-300, max_iter=2, early_exaggeration_iter=1, perplexity=10,
                  random_state=0)
    by_matrix = NeighbourEmbedding(metric="precomputed", init="random", **frozen).fit(distances)
    by_data = NeighbourEmbedding(init="random", **frozen).fit(two_modes[0])
    np.testing.assert_allclose(by_matrix.embedding_, by_data.embedding_)


# -- test_correctness.py ---------------------------------------------------------------------

def test_basic_flow(two_modes) -> None:
    """test_correctness::TestTSNECorrectness::test_basic_flow"""
    model = NeighbourEmbedding(**QUICK).fit(two_modes[0])
    assert np.all(np.isfinite(model.embedding_))
    assert np.all(np.isfinite(model.transform(two_modes[1], max_iter=20)))


@pytest.mark.parametrize("dof", [1.0, 0.8])
@pytest.mark.parametrize("precomputed", [False, True])
def test_iris(iris, dof: float, precomputed: bool) -> None:
    """test_correctness::TestTSNECorrectness::test_iris and ::test_iris_with_precomputed_
    distance_matrices, also as TestTSNECorrectnessUsingNonStandardDof (dof 0.8) and
    TestTSNECorrectnessUsingPrecomputedDistanceMatrix::test_iris"""
    x, y = iris
    data = squareform(pdist(x)) if precomputed else x
    metric = "precomputed" if precomputed else "euclidean"
    start = NeighbourEmbedding(init="random", metric=metric, dof=dof, learning_rate=1e-300,
                               max_iter=2, early_exaggeration_iter=1, random_state=0).fit(data)
    # cross-validated (openTSNE scores on the training points themselves)
    assert cross_val_score(KNeighborsClassifier(10), start.embedding_, y, cv=5).mean() < 0.5
    model = NeighbourEmbedding(init="random", metric=metric, dof=dof, max_iter=250,
                               early_exaggeration_iter=0, random_state=0).fit(data)
    assert cross_val_score(KNeighborsClassifier(10), model.embedding_, y, cv=5).mean() > 0.95


def test_iris_transform_equivalency_with_one_by_one(iris) -> None:
    """test_correctness::TestTSNECorrectness::test_iris_fft_transform_equivalency_with_one_by_one
    (and _bh_): new points do not interact"""
    train, test = train_test_split(iris[0], test_size=0.33, random_state=42)
    model = NeighbourEmbedding(**QUICK).fit(train)
    together = model.transform(test)
    alone = np.vstack([model.transform(test[i:i + 1]) for i in range(len(test))])
    np.testing.assert_allclose(alone, together, atol=1e-8)


def test_iris_transform_correctness(iris) -> None:
    """test_correctness::TestTSNECorrectness::test_iris_fft_transform_correctness (and _bh_)"""
    x_train, x_test, y_train, y_test = train_test_split(*iris, test_size=0.33, random_state=42)
    model = NeighbourEmbedding(early_exaggeration_iter=0, max_iter=50, random_state=0).fit(
        x_train)
    placed = model.transform(x_test, max_iter=100)
    assert _accuracy(model.embedding_, y_train, placed, y_test) > 0.95


def test_fft_with_n_components_gt_2(iris) -> None:
    """test_correctness::TestTSNECorrectness::test_fft_with_n_components_gt_2"""
    with pytest.raises(ValueError, match="n_components=2"):
        NeighbourEmbedding(n_components=3, method="fft").fit(iris[0])


def test_spectral_agreement_with_sklearn() -> None:
    """test_correctness::TestSpectralInitializationCorrectness::test_spectral_agreement_with_
    sklearn"""
    rng = np.random.RandomState(42)
    x = rng.randn(100, 20)
    x[:, 0] *= 5
    model = NeighbourEmbedding(init="spectral", learning_rate=1e-300, max_iter=2,
                               early_exaggeration_iter=1, random_state=0).fit(x)
    matrix = joint(model.affinity_.P_, model.affinity_.kind)
    reference = SpectralEmbedding(affinity="precomputed", random_state=0).fit_transform(
        np.asarray(sp.csr_matrix(matrix).toarray()))
    for column in range(2):
        correlation = np.corrcoef(model.embedding_[:, column], reference[:, column])[0, 1]
        assert abs(correlation) == pytest.approx(1.0, abs=1e-4)


def test_early_exaggeration_does_not_collapse() -> None:
    """test_correctness::TestEarlyExaggerationCollapse::test_early_exaggeration_does_not_collapse"""
    rng = np.random.RandomState(42)
    for n, d in ((100, 5), (150, 10), (200, 20)):
        embedded = NeighbourEmbedding(random_state=42, max_iter=300).fit_transform(
            rng.randn(n, d))
        assert np.max(np.abs(embedded)) > 1e-8


def test_data_with_duplicated_rows_works(iris) -> None:
    """test_correctness::TestDataMatricesWithDuplicatedRows::test_works_without_error"""
    x, _ = iris
    binary = (x > x.mean(axis=0)).astype(float)
    rows = np.random.RandomState(0).choice(len(binary), size=1000, replace=True)
    model = NeighbourEmbedding(early_exaggeration=100, method="fft", max_iter=100,
                               early_exaggeration_iter=50, random_state=0).fit(binary[rows])
    assert np.all(np.isfinite(model.embedding_))
