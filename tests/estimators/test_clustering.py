"""KernelClustering: the walk sampler and the loss against brute force, each switch end to end."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.datasets import make_blobs
from sklearn.metrics import normalized_mutual_info_score

from rkdo.estimators import KernelClustering
from rkdo.estimators._cluster_graph import SupervisoryGraph
from rkdo.estimators.clustering import clustering_loss


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    # well apart: these tests check the machinery of each switch, not where blobs touch
    centres = 6.0 * np.eye(3, 5)
    return make_blobs(n_samples=300, centers=centres, cluster_std=1.0, random_state=1)


def _exact_walk(p1: np.ndarray, length: int) -> np.ndarray:
    """The end-point distribution of :meth:`SupervisoryGraph.walk`, by enumerating paths."""
    n = p1.shape[0]
    result = np.zeros((n, n))
    for start in range(n):
        # paths as (first step, current node) -> probability
        paths = {(k, k): p1[start, k] for k in range(n) if p1[start, k] > 0}
        for _ in range(length):
            for (first, here), mass in paths.items():
                end = first if here == start else here
                result[start, end] += mass / length
            grown: dict[tuple[int, int], float] = {}
            for (first, here), mass in paths.items():
                for nxt in np.flatnonzero(p1[here]):
                    key = (first, int(nxt))
                    grown[key] = grown.get(key, 0.0) + mass * p1[here, nxt]
            paths = grown
    return result


@pytest.mark.parametrize("length", [1, 2, 3])
def test_walk_draws_follow_the_propagated_graph(length) -> None:
    rng = np.random.default_rng(0)
    weights = sp.random(6, 6, density=0.6, random_state=1, data_rvs=rng.random).toarray()
    weights = weights + weights.T + np.roll(np.eye(6), 1, axis=1)  # no isolated node
    np.fill_diagonal(weights, 0.0)
    graph = SupervisoryGraph(sp.csr_matrix(weights), length)
    p1 = weights / weights.sum(1, keepdims=True)
    draws = 40_000
    start = torch.arange(6).repeat(draws)
    ends = graph.walk(start, torch.Generator().manual_seed(0)).numpy()
    empirical = np.zeros((6, 6))
    np.add.at(empirical, (start.numpy(), ends), 1.0 / draws)
    np.testing.assert_allclose(empirical, _exact_walk(p1, length), atol=0.012)
    assert np.all(np.diag(empirical) == 0.0)


def test_loss_matches_brute_force() -> None:
    generator = torch.Generator().manual_seed(0)
    f = torch.softmax(torch.randn(7, 4, generator=generator, dtype=torch.float64), -1)
    g = torch.softmax(torch.randn(7, 4, generator=generator, dtype=torch.float64), -1)
    weight = torch.rand(7, generator=generator, dtype=torch.float64) + 0.5
    mass = torch.rand(4, generator=generator, dtype=torch.float64) * 50 + 10
    shuffle = torch.tensor([3, 0, 6, 1, 5, 2, 4])
    sharp = torch.tensor([1, 1, 2, 0, 6, 6, 3])
    a, b, alpha, n = 0.3, 0.2, 0.25, 100
    loss = clustering_loss(f.log(), g.log(), mass.log(), weight, debias_p=a, debias_q=b, n=n,
                           shuffle=shuffle, sharp=sharp, alpha=alpha)
    expected = 0.0
    for i in range(7):
        def cross(j: int, i: int = i) -> float:
            q = sum(float(f[i, c] * g[j, c] / mass[c]) for c in range(4))
            return -np.log((1 - b) * q + b / (n - 1))
        static = (1 - a) * cross(i) + a * cross(int(shuffle[i]))
        expected += float(weight[i]) * ((1 - alpha) * static + alpha * cross(int(sharp[i])))
    assert float(loss) == pytest.approx(expected / 7, rel=1e-10)


@pytest.mark.parametrize("params", [
    dict(), dict(init="random", n_init=2), dict(walk_length=1),
    dict(shared_neighbors=False), dict(affinity="gaussian", perplexity=10.0),
    dict(debias_p=0.5, debias_q=0.5), dict(ema=0.9), dict(alpha=0.3), dict(n_components=2),
])
def test_each_switch_recovers_blobs(blobs, params) -> None:
    x, labels = blobs
    model = KernelClustering(n_clusters=3, max_iter=40, n_init=1, hidden_layer_sizes=(32,),
                             random_state=0)
    model.set_params(**params)
    predicted = model.fit_predict(x)
    assert normalized_mutual_info_score(labels, predicted) > 0.95
    assert model.cluster_centers_.shape == (3, 5)
    assert len(model.loss_curve_) == model.n_iter_ and np.isfinite(model.objective_)
    np.testing.assert_array_equal(model.predict(x), model.labels_)


def test_minibatches_recover_blobs() -> None:
    x, labels = make_blobs(n_samples=1500, n_features=4, centers=3, random_state=2)
    # from a random start (the spectral one is already near the optimum), no lagging target
    model = KernelClustering(n_clusters=3, max_iter=10, n_init=1, batch_size=256, ema=0.0,
                             init="random",
                             hidden_layer_sizes=(32,), random_state=0).fit(x)
    assert normalized_mutual_info_score(labels, model.labels_) > 0.95
    assert model.loss_curve_[-1] < model.loss_curve_[0]


@pytest.mark.parametrize("size", [4, 40])
def test_spectral_embedding_separates_components(size) -> None:
    # size 4: the dense solver; 40: the sparse one, where eigenvalue 1 is threefold (one
    # Lanczos start vector finds only one direction of it)
    ring = np.roll(np.eye(size), 1, axis=1) + np.roll(np.eye(size), 2, axis=1)
    block = np.ones((4, 4)) - np.eye(4) if size == 4 else ring + ring.T
    graph = SupervisoryGraph(sp.block_diag([block, 2 * block, block]).tocsr(), 2)
    embedding = graph.spectral(3, random_state=0)
    groups = np.repeat(np.arange(3), size)
    for g in range(3):
        inside = embedding[groups == g]
        np.testing.assert_allclose(inside, np.broadcast_to(inside[0], inside.shape),
                                   atol=1e-6 if size == 4 else 1e-2)  # the solver's tolerance
    assert np.linalg.matrix_rank(embedding[::4], tol=1e-6) == 3


def test_score_is_minus_the_objective(blobs) -> None:
    x, _ = blobs
    model = KernelClustering(n_clusters=3, max_iter=20, n_init=1, hidden_layer_sizes=(32,),
                             random_state=0).fit(x)
    assert model.score(x) == pytest.approx(-model.objective_, rel=1e-5)


def test_bad_parameters_raise_in_fit(blobs) -> None:
    with pytest.raises(ValueError, match="affinity"):
        KernelClustering(affinity="spectral").fit(blobs[0])
    with pytest.raises(ValueError, match="n_clusters"):
        KernelClustering(n_clusters=1000).fit(blobs[0])
    with pytest.raises(ValueError, match="non-zero"):
        KernelClustering().fit(blobs[0], sample_weight=np.zeros(len(blobs[0])))
    with pytest.raises(ValueError, match="walk_length must be an integer >= 1"):
        KernelClustering(walk_length=0).fit(blobs[0])
    with pytest.raises(ValueError, match="unknown device 'gpu'; choose auto, cpu, cuda"):
        KernelClustering(device="gpu").fit(blobs[0])


def test_a_missing_device_is_refused_before_any_work(blobs, monkeypatch) -> None:
    """``device="cuda"`` on a machine without one fails in one line before the k-NN search
    (minutes at a million points), not at the model's ``.to`` after the spectral start."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    searched = []
    monkeypatch.setattr(SupervisoryGraph, "build",
                        classmethod(lambda cls, *a, **k: searched.append(1)))
    with pytest.raises(ValueError, match="'cuda' requested but no CUDA device is available"):
        KernelClustering(device="cuda").fit(blobs[0])
    assert not searched
    monkeypatch.undo()
    labels = KernelClustering(n_clusters=3, device="auto", max_iter=5,
                              random_state=0).fit_predict(blobs[0])  # auto: the CPU here
    assert normalized_mutual_info_score(blobs[1], labels) > 0.99


@pytest.mark.parametrize("shared", [0.0, True, 2.0])
def test_shared_neighbour_power_matches_brute_force(shared) -> None:
    x = np.random.default_rng(3).normal(size=(25, 3))
    k = 4
    graph = SupervisoryGraph.build(x, affinity="knn", n_neighbors=k, perplexity=30.0,
                                   walk_length=2, shared=shared, random_state=0)
    distance = ((x[:, None] - x[None]) ** 2).sum(-1)
    np.fill_diagonal(distance, np.inf)
    near = [set(np.argsort(row)[:k].tolist()) for row in distance]
    expected = np.zeros((25, 25))
    for i in range(25):
        for j in near[i]:
            expected[i, j] += 0.5 / k
            expected[j, i] += 0.5 / k
    for i, j in zip(*np.nonzero(expected), strict=True):
        common = len((near[i] | {i}) & (near[j] | {j}))
        expected[i, j] *= common ** float(shared)
    np.testing.assert_allclose(graph.symmetric.toarray(), expected, rtol=1e-12)


@pytest.mark.parametrize(("n", "batch"), [(8, 8), (8, 2), (9, 2)])
def test_ema_is_a_momentum_per_epoch(n, batch) -> None:
    from rkdo.estimators._cluster_train import optimise

    model, target = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    torch.nn.init.ones_(model.weight), torch.nn.init.ones_(model.bias)
    torch.nn.init.zeros_(target.weight), torch.nn.init.zeros_(target.bias)
    target.requires_grad_(False)
    # a loss with zero gradient: Adam leaves the model at 1, only the target moves
    curve, epochs = optimise(model, target, lambda anchors: 0.0 * model.weight.sum(),
                             lambda: torch.zeros(n, dtype=torch.long), n=n, batch=batch,
                             max_iter=3, learning_rate=0.1, ema=0.7, tol=-1.0,
                             generator=torch.Generator().manual_seed(0))
    assert epochs == 3 and curve == [0.0, 0.0, 0.0]
    # three epochs: theta' = 1 - ema^3, whatever the number of steps an epoch takes
    assert float(target.weight) == pytest.approx(1.0 - 0.7 ** 3, rel=1e-6)
    assert float(model.weight) == 1.0


@pytest.mark.parametrize(("init", "restarts"), [("spectral", 1), ("random", 3)])
def test_n_init_auto_is_one_restart_from_the_spectral_start(blobs, init, restarts) -> None:
    x, _ = blobs
    settings = dict(n_clusters=3, max_iter=5, hidden_layer_sizes=(8,), init=init,
                    random_state=0)
    auto = KernelClustering(n_init="auto", **settings).fit(x)
    fixed = KernelClustering(n_init=restarts, **settings).fit(x)
    other = KernelClustering(n_init=restarts + 1, **settings).fit(x)
    assert auto.objective_ == fixed.objective_
    np.testing.assert_array_equal(auto.labels_, fixed.labels_)
    assert other.objective_ <= auto.objective_


@pytest.mark.parametrize("n, k", [(2, 1), (3, 2), (6, 3), (300, 9), (1797, 11), (70_000, 17)])
def test_auto_neighbours_is_ceil_log2_n(n, k) -> None:
    """``n_neighbors="auto"`` is ``ceil(log2 n)``, counted by doubling (no float rounding)."""
    expected = 0
    while 2 ** expected < n:
        expected += 1
    assert expected == k
    if n > 300:  # the rule alone; the fits below keep the test fast
        return
    x = np.random.RandomState(0).normal(size=(n, 3))
    model = KernelClustering(n_clusters=min(2, n), n_neighbors="auto", max_iter=2,
                             hidden_layer_sizes=(4,), random_state=0).fit(x)
    assert model.n_neighbors == "auto" and model.n_neighbors_ == k
    assert KernelClustering(n_clusters=2, n_neighbors=4, max_iter=2, hidden_layer_sizes=(4,),
                            random_state=0).fit(x[:6] if n >= 6 else np.r_[x, x + 1, x + 2]
                                                ).n_neighbors_ == 4


@pytest.mark.parametrize("call", ["fit", "fit_predict"])
def test_warnings_point_at_the_callers_line(call) -> None:
    """The clipped-``n_neighbors`` and the empty-cluster warnings name this file, not the
    estimator's insides or scikit-learn's ``fit_predict`` (the ``stacklevel`` bug of the
    embedding's warnings, fixed the same way)."""
    import warnings

    x = np.random.RandomState(0).normal(size=(6, 2))
    model = KernelClustering(n_clusters=6, n_neighbors=10, max_iter=2, hidden_layer_sizes=(4,),
                             random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        getattr(model, call)(x)
    messages = {str(w.message).split(" ")[0]: w.filename for w in caught}
    assert "n_neighbors" in messages
    assert set(messages.values()) == {__file__}, messages
