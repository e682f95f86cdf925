"""Negative sampling against independent references: autograd of the two losses, and blobs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs
from sklearn.neighbors import KNeighborsClassifier

from rkdo.estimators import NeighbourEmbedding
from rkdo.estimators._affinity import joint_sparse
from rkdo.estimators._sampling import _gradient, sampled_embedding


@pytest.mark.parametrize("loss", ["infonce", "neg"])
def test_pair_gradient_is_autograds(loss: str) -> None:
    rng = np.random.default_rng(0)
    y = torch.tensor(rng.normal(scale=0.7, size=(7, 2)), requires_grad=True)  # i, j, 5 negatives
    w = (1.0 + (y[0] - y[1:]).square().sum(-1)).reciprocal()
    if loss == "infonce":
        value = -torch.log(w[0] / w.sum())
    else:
        xi = w / (w + 1.0)
        value = -torch.log(xi[0]) - torch.log(1.0 - xi[1:]).sum()
    value.backward()
    d = (y[0] - y[1:]).detach().numpy()
    pull, gx, gy = _gradient(d[0, 0], d[0, 1], d[1:, 0].copy(), d[1:, 1].copy(),
                             loss == "infonce")
    np.testing.assert_allclose([gx, gy], y.grad[0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(-pull * d[0], y.grad[1].numpy(), rtol=1e-6)  # y_j's gradient


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    return make_blobs(n_samples=1200, n_features=10, centers=6, cluster_std=1.0, random_state=0)


@pytest.mark.parametrize("loss", ["infonce", "neg"])
def test_sampled_embedding_separates_blobs_reproducibly(blobs, loss: str) -> None:
    x, labels = blobs
    affinity = joint_sparse(x, 10.0, 30, 0)
    init = np.random.default_rng(0).normal(size=(len(x), 2))
    y = sampled_embedding(affinity, init, loss=loss, epochs=30, seed=1)
    assert np.isfinite(y).all()
    accuracy = KNeighborsClassifier(10).fit(y[::2], labels[::2]).score(y[1::2], labels[1::2])
    assert accuracy > 0.99
    np.testing.assert_array_equal(y, sampled_embedding(affinity, init, loss=loss, epochs=30,
                                                       seed=1))


def test_estimator_routes_infonce_and_neg_to_sampling(blobs) -> None:
    x, _ = blobs
    model = NeighbourEmbedding(objective="infonce", max_iter=50, random_state=0).fit(x)
    assert model.method_ == "sampled" and model.embedding_.shape == (len(x), 2)
    assert NeighbourEmbedding(objective="neg", max_iter=50, random_state=0).fit(x).method_ \
        == "sampled"
    with pytest.raises(ValueError, match="method='sampled' is for"):
        NeighbourEmbedding(objective="neg", method="fft").fit(x)
    with pytest.raises(ValueError, match="method='sampled' is for"):
        NeighbourEmbedding(objective="tsne", method="sampled").fit(x)


def test_sampled_solver_uses_and_reports_its_learning_rate(blobs) -> None:
    x, _ = blobs
    x = x[:300]
    auto = NeighbourEmbedding(objective="neg", method="sampled", max_iter=50,
                              random_state=0).fit(x)
    assert auto.learning_rate_ == 1.0 and auto.stop_reason_ == "max_iter"
    given = NeighbourEmbedding(objective="neg", method="sampled", max_iter=50,
                               learning_rate=0.25, random_state=0).fit(x)
    assert given.learning_rate_ == 0.25
    assert not np.array_equal(given.embedding_, auto.embedding_)  # the rate is not ignored
