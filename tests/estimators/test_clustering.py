"""KernelClustering end to end on small data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import normalized_mutual_info_score

from rkdo.estimators import KernelClustering


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    return make_blobs(n_samples=300, n_features=5, centers=3, cluster_std=1.0, random_state=1)


@pytest.mark.parametrize("params", [
    dict(), dict(affinity="gaussian", perplexity=10.0), dict(debias_p=0.2, debias_q=0.2),
    dict(alpha=0.3),
])
def test_recovers_blobs(blobs, params) -> None:
    x, labels = blobs
    model = KernelClustering(n_clusters=3, max_iter=150, n_init=2, random_state=0, **params)
    predicted = model.fit_predict(x)
    assert normalized_mutual_info_score(labels, predicted) > 0.95
    assert model.cluster_centers_.shape == (3, 5)
    assert len(model.loss_curve_) == 150 and model.loss_curve_[-1] < model.loss_curve_[0]
    np.testing.assert_array_equal(model.predict(x), model.labels_)
    np.testing.assert_allclose(model.predict_proba(x).sum(1), 1.0, rtol=1e-5)


def test_sampled_uniform_part_above_dense_limit() -> None:
    x, labels = make_blobs(n_samples=1500, n_features=4, centers=3, random_state=2)
    model = KernelClustering(n_clusters=3, max_iter=100, n_init=1, debias_p=0.2,
                             n_negatives=16, random_state=0).fit(x)
    assert normalized_mutual_info_score(labels, model.labels_) > 0.95


def test_bad_parameters_raise_in_fit(blobs) -> None:
    with pytest.raises(ValueError, match="affinity"):
        KernelClustering(affinity="spectral").fit(blobs[0])
    with pytest.raises(ValueError, match="n_clusters"):
        KernelClustering(n_clusters=1000).fit(blobs[0])
