"""NeighbourEmbedding end to end on small data."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn
import torch
from sklearn.datasets import make_blobs
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from rkdo.estimators import NeighbourEmbedding
from rkdo.estimators import embedding as embedding_module
from rkdo.estimators.affinities import PerplexityBased, PrecomputedAffinities, Uniform

FAST = dict(max_iter=150, early_exaggeration_iter=50, perplexity=10.0, random_state=0)


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    return make_blobs(n_samples=240, n_features=10, centers=4, cluster_std=2.0, random_state=0)


def _knn(y_embedded: np.ndarray, labels: np.ndarray) -> float:
    return float(cross_val_score(KNeighborsClassifier(10), y_embedded, labels, cv=3).mean())


@pytest.mark.parametrize("objective", ["tsne", "sne", "infonce"])
def test_objectives_separate_blobs(blobs, objective: str) -> None:
    x, labels = blobs
    model = NeighbourEmbedding(objective=objective, **FAST)
    embedded = model.fit_transform(x)
    assert embedded.shape == (240, 2) and model.method_ == "exact"
    assert np.isfinite(model.kl_divergence_) and model.n_iter_ == 150
    assert _knn(embedded, labels) > 0.95
    assert model.history_[-1]["kl"] < model.history_[0]["kl"]


def test_fft_matches_exact_quality(blobs) -> None:
    x, labels = blobs
    embedded = NeighbourEmbedding(method="fft", **FAST).fit_transform(x)
    assert _knn(embedded, labels) > 0.95


def test_recursive_teacher_moves_target_but_reports_static_kl(blobs) -> None:
    x, _ = blobs
    static = NeighbourEmbedding(**FAST).fit(x)
    recursive = NeighbourEmbedding(alpha=0.05, alpha_schedule="linear", **FAST).fit(x)
    assert recursive.history_[-1]["alpha"] == pytest.approx(0.0, abs=1e-3)
    assert max(h["alpha"] for h in recursive.history_) > 0.0
    # the teacher follows the student: the loss against the moving target falls below the
    # static loss, while kl_divergence_ is measured against the static P
    assert recursive.history_[-1]["kl"] < recursive.kl_divergence_
    assert static.kl_divergence_ == pytest.approx(static.history_[-1]["kl"], rel=0.05)


def test_parametric_transform_places_new_points(blobs) -> None:
    x, labels = blobs
    model = NeighbourEmbedding(parametric=True, hidden_layer_sizes=(32,), **FAST).fit(x[:200])
    placed = model.transform(x[200:])
    assert placed.shape == (40, 2)
    train_knn = KNeighborsClassifier(5).fit(model.embedding_, labels[:200])
    assert train_knn.score(placed, labels[200:]) > 0.9


@pytest.mark.parametrize("params, message", [
    (dict(objective="umap"), "objective"),
    (dict(perplexity=-1.0), "perplexity"),
    (dict(init="umap"), "init"),
    (dict(metric="nosuch"), "metric"),
    (dict(n_jobs=0), "n_jobs"),
    (dict(callbacks=3), "callbacks"),
    (dict(device="banana"), "unknown device"),
    (dict(max_step_norm=0.0), "max_step_norm"),
    (dict(method="fft", objective="sne"), "fft"),
    (dict(alpha=1.5), "alpha"),
    (dict(max_iter=0), "max_iter"),
])
def test_bad_parameters_raise_in_fit(blobs, params, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NeighbourEmbedding(**params).fit(blobs[0])


def test_pca_init_under_every_transform_output(blobs) -> None:
    """Bug 3 of issue 17: ``set_config(transform_output="pandas")`` broke init="pca"."""
    x, _ = blobs
    reference = NeighbourEmbedding(max_iter=20, early_exaggeration_iter=10, random_state=0)
    expected = reference.fit_transform(x)
    pytest.importorskip("pandas")  # in the test extra, so this runs in CI
    outputs = ["pandas", "default"]
    try:
        import polars  # noqa: F401  (optional: scikit-learn's other DataFrame output)
        outputs.append("polars")
    except ImportError:
        pass
    for output in outputs:
        context = sklearn.config_context(transform_output=output)
        context.__enter__()
        try:
            got = NeighbourEmbedding(max_iter=20, early_exaggeration_iter=10,
                                     random_state=0).fit_transform(x)
        finally:
            context.__exit__(None, None, None)
        assert isinstance(got, np.ndarray)
        np.testing.assert_allclose(got, expected)


def test_init_array_is_used_and_checked(blobs) -> None:
    x, _ = blobs
    start = np.random.default_rng(0).standard_normal((240, 2))
    # a non-string init used to fail with "truth value of an array is ambiguous"
    model = NeighbourEmbedding(init=start, learning_rate=1e-12, max_iter=2,
                               early_exaggeration_iter=1).fit(x)
    np.testing.assert_allclose(model.embedding_, start, atol=1e-6)
    with pytest.raises(ValueError, match=r"shape \(n_samples, n_components\)"):
        NeighbourEmbedding(init=start[:10]).fit(x)
    start[3, 1] = np.nan
    with pytest.raises(ValueError, match="init contains NaN"):
        NeighbourEmbedding(init=start).fit(x)


@pytest.mark.parametrize("init", ["pca", "random", "spectral"])
def test_string_inits_embed(blobs, init: str) -> None:
    x, labels = blobs
    embedded = NeighbourEmbedding(init=init, **FAST).fit_transform(x)
    assert _knn(embedded, labels) > 0.95


def test_step_is_bounded_per_point(blobs) -> None:
    """``max_step_norm`` bounds each point's move per step (openTSNE's semantics)."""
    x, _ = blobs
    start = np.zeros((240, 2)) + np.random.default_rng(1).standard_normal((240, 2)) * 1e-3
    moved = NeighbourEmbedding(init=start, learning_rate=1e6, max_step_norm=0.01, max_iter=50,
                               early_exaggeration_iter=0).fit_transform(x)
    assert np.linalg.norm(moved - start, axis=1).max() <= 50 * 0.01 + 1e-9
    free = NeighbourEmbedding(init=start, learning_rate=1e6, max_step_norm=None, max_iter=50,
                              early_exaggeration_iter=0).fit_transform(x)
    assert np.linalg.norm(free - start, axis=1).max() > 1.0


def test_scikit_learn_50_points_learning_rate_100_stays_compact() -> None:
    """Bug 2 of issue 17: 50 points at learning_rate=100 spread to a span of 644 by step 350
    and each FFT step took seconds; the bounded step keeps the span (and the grid) small."""
    rng = np.random.RandomState(0)
    x = rng.randn(50, 3)
    x[(rng.randint(0, 50, 25), rng.randint(0, 3, 25))] = 0.0
    model = NeighbourEmbedding(perplexity=10, learning_rate=100.0, method="fft", init="random",
                               random_state=0, max_iter=350).fit(x)
    assert np.ptp(model.embedding_, axis=0).max() < 100.0 and model.n_iter_ == 350


@pytest.mark.parametrize("objective, way_out", [("tsne", "method='fft'"),
                                                ("sne", "objective='tsne'"),
                                                ("infonce", "method=.sampled.")])
def test_exact_memory_refused_before_allocating(objective: str, way_out: str) -> None:
    """The 60,000-row exact run tried to allocate 28.8 GB; now one line before any work."""
    x = np.random.default_rng(0).standard_normal((60_000, 2)).astype(np.float32)
    with pytest.raises(ValueError, match=rf"n = 60000 needs ~[\d.]+ GB .*{way_out}"):
        NeighbourEmbedding(objective=objective, method="exact").fit(x)


def _same_affinities(a: NeighbourEmbedding, b: NeighbourEmbedding) -> None:
    """Equal input affinities and equal quality: the coordinates themselves differ after 150
    steps, which amplify the last bits of two routes to the same distances."""
    left, right = a.affinity_.P_, b.affinity_.P_
    left = left.toarray() if sp.issparse(left) else left
    right = right.toarray() if sp.issparse(right) else right
    np.testing.assert_allclose(left, right, rtol=1e-6, atol=1e-12)
    assert a.kl_divergence_ == pytest.approx(b.kl_divergence_, rel=0.02)


def test_metric_and_precomputed_distances_agree(blobs) -> None:
    from sklearn.metrics import pairwise_distances

    x, labels = blobs
    params = dict(init="random", **FAST)
    by_name = NeighbourEmbedding(metric="manhattan", **params).fit(x)
    distances = pairwise_distances(x, metric="manhattan")
    by_matrix = NeighbourEmbedding(metric="precomputed", **params).fit(distances)
    _same_affinities(by_name, by_matrix)
    by_callable = NeighbourEmbedding(metric=lambda a, b: np.abs(a - b).sum(), **params).fit(x)
    _same_affinities(by_name, by_callable)
    assert _knn(by_name.embedding_, labels) > 0.95


@pytest.mark.parametrize("method", ["exact", "fft"])
def test_sparse_input_matches_dense(blobs, method: str) -> None:
    x, labels = blobs
    params = dict(method=method, init="random", **FAST)
    dense = NeighbourEmbedding(**params).fit(x)
    sparse = NeighbourEmbedding(**params).fit(sp.csr_matrix(x))
    _same_affinities(dense, sparse)
    assert _knn(sparse.embedding_, labels) > 0.95


def test_too_large_perplexity_lowered_with_warning(blobs) -> None:
    x, _ = blobs
    with pytest.warns(UserWarning, match="perplexity 500 is too large") as caught:
        model = NeighbourEmbedding(perplexity=500.0, max_iter=20,
                                   early_exaggeration_iter=5).fit(x[:40])
    assert model.effective_perplexity_ == pytest.approx(39 / 3)
    assert caught[0].filename == __file__  # the user's line, not the estimator's insides


def test_too_few_points_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="minimum of 4 is required"):
        NeighbourEmbedding().fit(np.random.default_rng(0).standard_normal((3, 4)))


def test_early_stopping_sets_true_n_iter(blobs) -> None:
    x, _ = blobs
    stopped = NeighbourEmbedding(min_grad_norm=1e3, **FAST).fit(x)
    assert stopped.n_iter_ == FAST["early_exaggeration_iter"] + 1
    assert "min_grad_norm" in stopped.stop_reason_
    # a step too small to move any coordinate: the KL stays put, first checked at step 100
    patience = NeighbourEmbedding(n_iter_without_progress=50, max_iter=2000,
                                  learning_rate=1e-300, early_exaggeration_iter=50,
                                  perplexity=10.0, random_state=0).fit(x)
    assert patience.n_iter_ == 200 and "no progress" in patience.stop_reason_


def test_callbacks_every_50_steps_can_stop(blobs) -> None:
    x, _ = blobs
    seen: list[int] = []

    def stop_at_100(iteration: int, kl: float, embedding: np.ndarray) -> bool:
        assert embedding.shape == (240, 2) and np.isfinite(kl)
        seen.append(iteration)
        return iteration >= 100

    model = NeighbourEmbedding(callbacks=[stop_at_100], **FAST).fit(x)
    assert seen == [50, 100] and model.n_iter_ == 100


def test_float32_in_float32_out(blobs) -> None:
    x, _ = blobs
    model = NeighbourEmbedding(**FAST)
    assert model.fit_transform(x.astype(np.float32)).dtype == np.float32
    assert model.transform(x[:5].astype(np.float32)).dtype == np.float32
    assert NeighbourEmbedding(**FAST).fit_transform(x).dtype == np.float64


def test_n_jobs_sets_threads_during_fit_only(blobs) -> None:
    x, _ = blobs
    before = torch.get_num_threads()
    seen = []
    NeighbourEmbedding(n_jobs=1, callbacks=lambda *a: seen.append(torch.get_num_threads()),
                       **FAST).fit(x)
    assert seen and set(seen) == {1} and torch.get_num_threads() == before


def test_transform_places_new_points_non_parametric(blobs) -> None:
    """openTSNE's transform: new points optimised against the fixed embedding."""
    x, labels = blobs
    model = NeighbourEmbedding(**FAST).fit(x[:200])
    placed = model.transform(x[200:])
    knn = KNeighborsClassifier(5).fit(model.embedding_, labels[:200])
    assert knn.score(placed, labels[200:]) > 0.9
    one_by_one = np.vstack([model.transform(x[200 + i: 201 + i]) for i in range(3)])
    np.testing.assert_allclose(one_by_one, placed[:3], atol=1e-8)


@pytest.mark.parametrize("factor", [1e200, 1e-200])
def test_extreme_scales_give_the_unit_scale_embedding(blobs, factor: float) -> None:
    """Issue 19 item 11: x 1e200 overflowed (raw FloatingPointError), x 1e-200 collapsed."""
    x, _ = blobs
    x, labels = blobs
    params = dict(init="random", **FAST)
    expected = NeighbourEmbedding(**params).fit(x)
    got = NeighbourEmbedding(**params).fit(x * factor)
    _same_affinities(expected, got)
    assert _knn(got.embedding_, labels) > 0.95


@pytest.mark.parametrize("affinity", [PerplexityBased(10.0), Uniform(10)])
def test_affinity_objects_as_parameter_and_in_fit(blobs, affinity) -> None:
    x, labels = blobs
    by_param = NeighbourEmbedding(affinity=affinity, init="random", **FAST).fit_transform(x)
    fitted = type(affinity)(**affinity.__dict__).fit(x)
    by_fit = NeighbourEmbedding(init="random", **FAST).fit_transform(None, affinities=fitted)
    np.testing.assert_allclose(by_param, by_fit, atol=1e-6)
    assert _knn(by_param, labels) > 0.95


def test_precomputed_affinities_alone_use_spectral_init(blobs) -> None:
    x, labels = blobs
    matrix = NeighbourEmbedding(**FAST).fit(x).affinity_.P_
    with pytest.warns(UserWarning, match="init='spectral'"):
        embedded = NeighbourEmbedding(**FAST).fit_transform(
            affinities=PrecomputedAffinities(matrix).fit())
    assert _knn(embedded, labels) > 0.95


@pytest.mark.parametrize("device, message", [("banana", "unknown device"),
                                             ("cuda:99", "cuda")])
def test_bad_device_is_one_line(blobs, device: str, message: str) -> None:
    if device.startswith("cuda") and torch.cuda.device_count() > 99:
        pytest.skip("this machine has 100 GPUs")
    with pytest.raises(ValueError, match=message):
        NeighbourEmbedding(device=device).fit(blobs[0])


def test_solver_names_have_their_own_constant() -> None:
    assert embedding_module.SOLVERS == ("auto", "exact", "fft", "sampled")
    assert not hasattr(embedding_module, "METHODS")
