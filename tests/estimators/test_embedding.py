"""NeighbourEmbedding end to end on small data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from rkdo.estimators import NeighbourEmbedding

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
    assert not hasattr(NeighbourEmbedding(), "transform")


@pytest.mark.parametrize("params, message", [
    (dict(objective="umap"), "objective"),
    (dict(perplexity=500.0), "perplexity"),
    (dict(method="fft", objective="sne"), "fft"),
    (dict(alpha=1.5), "alpha"),
    (dict(max_iter=0), "max_iter"),
])
def test_bad_parameters_raise_in_fit(blobs, params, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NeighbourEmbedding(**params).fit(blobs[0])
