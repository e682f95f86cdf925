"""Tests for rkdo.evaluation.metrics: every metric against scikit-learn or a brute-force loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rkdo.evaluation import metrics as mt


def blobs(n: int, d: int, classes: int, spread: float, seed: int):
    """Gaussian class clusters: features (n, d) float64 and labels (n,) int64."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, d, generator=g, dtype=torch.float64) * 3.0
    y = torch.arange(n) % classes
    x = centres[y] + spread * torch.randn(n, d, generator=g, dtype=torch.float64)
    return x, y


# --------------------------------------------------------------------------- linear probe


def test_linear_probe_equals_sklearn_pipeline():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = blobs(300, 6, 3, spread=4.0, seed=1)
    x[:, 0] *= 50.0  # make standardization matter
    tr, te = slice(0, 200), slice(200, 300)
    for standardize in (True, False):
        steps = [StandardScaler()] if standardize else []
        reference = make_pipeline(*steps, LogisticRegression(C=0.3, max_iter=500, random_state=3))
        reference.fit(x[tr].numpy(), y[tr].numpy())
        expected = reference.score(x[te].numpy(), y[te].numpy())
        got = mt.linear_probe(x[tr], y[tr], x[te], y[te], C=0.3, max_iter=500, seed=3,
                              standardize=standardize)
        assert got == pytest.approx(expected, abs=1e-12)
        assert 0.4 < got < 1.0  # an informative, non-trivial case


def test_linear_probe_separable_is_perfect_and_accepts_numpy():
    x, y = blobs(200, 5, 4, spread=0.05, seed=2)
    acc = mt.linear_probe(x[:150].numpy(), y[:150].numpy(), x[150:].numpy(), y[150:].numpy())
    assert acc == 1.0


# --------------------------------------------------------------------------- k-NN


def knn_loop(train_x, train_y, test_x, test_y, k, temperature, classes):
    train = F.normalize(train_x.double(), dim=1)
    correct = 0
    for i in range(test_x.shape[0]):
        q = F.normalize(test_x[i].double(), dim=0)
        sims = [(float(train[j] @ q), j) for j in range(train.shape[0])]
        sims.sort(reverse=True)
        votes = [0.0] * classes
        for s, j in sims[:k]:
            votes[int(train_y[j])] += float(np.exp(s / temperature))
        correct += int(int(np.argmax(votes)) == int(test_y[i]))
    return correct / test_x.shape[0]


@pytest.mark.parametrize("k,temperature", [(1, 0.1), (5, 0.07), (20, 0.5), (60, 1.0)])
def test_weighted_knn_matches_brute_force_loop(k, temperature):
    train_x, train_y = blobs(60, 7, 4, spread=6.0, seed=3)
    test_x, test_y = blobs(45, 7, 4, spread=6.0, seed=4)
    expected = knn_loop(train_x, train_y, test_x, test_y, k, temperature, 4)
    got = mt.knn_accuracy(train_x, train_y, test_x, test_y, k=k, temperature=temperature,
                          chunk=16)
    assert got == pytest.approx(expected, abs=1e-12)


def test_weighted_knn_differs_from_majority_vote_where_weights_matter():
    # one very close neighbour of class 1 against two distant ones of class 0
    train_x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.05, 1.0]])
    train_y = torch.tensor([1, 0, 0])
    test_x = torch.tensor([[1.0, 0.02]])
    assert mt.knn_accuracy(train_x, train_y, test_x, torch.tensor([1]), k=3,
                           temperature=0.1) == 1.0
    # with a huge temperature the weights are ~equal: majority (class 0) wins
    assert mt.knn_accuracy(train_x, train_y, test_x, torch.tensor([0]), k=3,
                           temperature=1e6) == 1.0


def test_knn_k1_equals_sklearn_cosine_nearest_neighbour():
    from sklearn.neighbors import KNeighborsClassifier

    train_x, train_y = blobs(120, 5, 3, spread=5.0, seed=5)
    test_x, test_y = blobs(80, 5, 3, spread=5.0, seed=6)
    clf = KNeighborsClassifier(n_neighbors=1, metric="cosine").fit(train_x.numpy(), train_y)
    expected = clf.score(test_x.numpy(), test_y.numpy())
    assert mt.knn_accuracy(train_x, train_y, test_x, test_y, k=1) == pytest.approx(expected)
    assert 0.3 < expected < 1.0


def test_knn_accuracies_agree_with_single_k_calls_and_tiny_temperature_is_finite():
    train_x, train_y = blobs(100, 6, 5, spread=5.0, seed=7)
    test_x, test_y = blobs(50, 6, 5, spread=5.0, seed=8)
    both = mt.knn_accuracies(train_x, train_y, test_x, test_y, ks=(30, 3), chunk=7)
    for k in (30, 3):
        assert both[k] == mt.knn_accuracy(train_x, train_y, test_x, test_y, k=k)
    # exp(s / 1e-4) overflows without the per-row shift; the result must stay the 1-NN answer
    tiny = mt.knn_accuracy(train_x, train_y, test_x, test_y, k=10, temperature=1e-4)
    assert tiny == mt.knn_accuracy(train_x, train_y, test_x, test_y, k=1)


# --------------------------------------------------------------------------- clustering


def test_cluster_accuracy_hungarian():
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    permuted = np.array([2, 0, 1])[y]  # clusters are a relabelling of the classes
    assert mt.cluster_accuracy(y, permuted) == 1.0
    # by hand: map cluster 1->0 (2 right), 0->1 (1 right), 2->2 (2 right): 5/6
    assert mt.cluster_accuracy([0, 0, 1, 1, 2, 2], [1, 1, 0, 2, 2, 2]) == pytest.approx(5 / 6)
    # more clusters than classes: one cluster per class at most
    assert mt.cluster_accuracy([0, 0, 0, 0], [0, 0, 1, 1]) == pytest.approx(0.5)


def test_kmeans_metrics_equal_sklearn_on_same_clustering():
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
    from sklearn.preprocessing import normalize

    x, y = blobs(150, 6, 3, spread=3.0, seed=9)
    got = mt.kmeans_metrics(x, y, seed=4)
    clusters = KMeans(n_clusters=3, n_init=10, random_state=4).fit_predict(normalize(x.numpy()))
    assert got["nmi"] == pytest.approx(normalized_mutual_info_score(y, clusters), abs=1e-9)
    assert got["ari"] == pytest.approx(adjusted_rand_score(y, clusters), abs=1e-9)
    assert got["cluster_acc"] == pytest.approx(mt.cluster_accuracy(y, clusters))
    assert 0.0 < got["ari"] < 1.0


def test_kmeans_metrics_perfect_on_separated_directions():
    x, y = blobs(90, 4, 3, spread=0.01, seed=10)
    got = mt.kmeans_metrics(x, y, n_clusters=3)
    assert got == pytest.approx({"nmi": 1.0, "ari": 1.0, "cluster_acc": 1.0})


# --------------------------------------------------------------------------- neighbourhoods


def neighbourhood_loop(x, y, k):
    u = F.normalize(x.double(), dim=1)
    total = 0.0
    for i in range(u.shape[0]):
        sims = sorted(((float(u[i] @ u[j]), j) for j in range(u.shape[0]) if j != i),
                      reverse=True)
        total += sum(int(y[j]) == int(y[i]) for _, j in sims[:k]) / k
    return total / u.shape[0]


@pytest.mark.parametrize("k", [1, 5, 12])
def test_neighbourhood_accuracy_matches_loop(k):
    x, y = blobs(70, 5, 4, spread=5.0, seed=11)
    got = mt.neighbourhood_accuracy(x, y, k=k, chunk=16)
    assert got == pytest.approx(neighbourhood_loop(x, y, k), abs=1e-12)


def test_neighbourhood_accuracy_matches_reference_euclidean_on_unit_vectors():
    from sklearn.neighbors import NearestNeighbors

    x, y = blobs(80, 6, 4, spread=4.0, seed=12)
    u = F.normalize(x, dim=1).numpy()
    index = NearestNeighbors(n_neighbors=6).fit(u).kneighbors(u)[1][:, 1:]
    expected = float((y.numpy()[index] == y.numpy()[:, None]).mean())
    assert mt.neighbourhood_accuracy(x, y, k=5) == pytest.approx(expected)

# --------------------------------------------------------------------------- bad inputs


def test_bad_inputs_raise_value_error():
    x, y = blobs(20, 3, 2, spread=1.0, seed=13)
    with pytest.raises(ValueError, match="k must be <="):
        mt.knn_accuracy(x, y, x, y, k=21)
    with pytest.raises(ValueError, match="one label per feature row"):
        mt.knn_accuracy(x, y[:-1], x, y, k=3)
    with pytest.raises(ValueError, match="one label per feature row"):
        mt.linear_probe(x, y, x, y[:5])
    with pytest.raises(ValueError, match="same feature dimension"):
        mt.linear_probe(x, y, x[:, :2], y)
    with pytest.raises(ValueError, match="k must be <"):
        mt.neighbourhood_accuracy(x, y, k=20)
    with pytest.raises(ValueError, match="temperature"):
        mt.knn_accuracy(x, y, x, y, k=3, temperature=0.0)
    with pytest.raises(ValueError, match="integer class labels"):
        mt.kmeans_metrics(x, y.float())
    with pytest.raises(ValueError, match="n_clusters"):
        mt.kmeans_metrics(x, y, n_clusters=21)
    with pytest.raises(ValueError, match="at least two classes"):
        mt.linear_probe(x, torch.zeros(20, dtype=torch.long), x, y)


# --------------------------------------------------------------------------- protocols
