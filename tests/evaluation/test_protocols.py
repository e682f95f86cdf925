"""Tests for rkdo.evaluation.protocols: every metric against scikit-learn or a brute-force loop."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rkdo.evaluation import protocols as ev

# --------------------------------------------------------------------------- stand-ins


class TinyEncoder(nn.Module):
    """features(x): flatten -> linear -> batch norm -> ReLU (mode-dependent through BN and
    dropout); forward(x): L2-normalized projection of the features."""

    def __init__(self, in_dim: int, feat_dim: int = 16, out_dim: int = 8) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Flatten(), nn.Linear(in_dim, feat_dim), nn.BatchNorm1d(feat_dim), nn.ReLU(),
            nn.Dropout(0.5),
        )
        self.head = nn.Linear(feat_dim, out_dim)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.features(x)), dim=1)


def noisy_views(images: torch.Tensor, generator: torch.Generator):
    """A simple two-view augmentation: [-1, 1] scaling plus Gaussian noise from ``generator``."""
    x = images.float() / 127.5 - 1.0
    n1 = torch.randn(x.shape, generator=generator, device=x.device)
    n2 = torch.randn(x.shape, generator=generator, device=x.device)
    return x + 0.3 * n1, x + 0.3 * n2


@dataclass
class Split:
    images: torch.Tensor
    labels: torch.Tensor


@dataclass
class Splits:
    train: Split
    test: Split


def blobs(n: int, d: int, classes: int, spread: float, seed: int):
    """Gaussian class clusters: features (n, d) float64 and labels (n,) int64."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, d, generator=g, dtype=torch.float64) * 3.0
    y = torch.arange(n) % classes
    x = centres[y] + spread * torch.randn(n, d, generator=g, dtype=torch.float64)
    return x, y


def trained_model(in_dim: int, seed: int = 0) -> TinyEncoder:
    torch.manual_seed(seed)
    model = TinyEncoder(in_dim)
    model.train()
    with torch.no_grad():  # give batch norm non-trivial running statistics
        model(torch.randn(64, in_dim) * 2 + 1)
    return model


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
        got = ev.linear_probe(x[tr], y[tr], x[te], y[te], C=0.3, max_iter=500, seed=3,
                              standardize=standardize)
        assert got == pytest.approx(expected, abs=1e-12)
        assert 0.4 < got < 1.0  # an informative, non-trivial case


def test_linear_probe_separable_is_perfect_and_accepts_numpy():
    x, y = blobs(200, 5, 4, spread=0.05, seed=2)
    acc = ev.linear_probe(x[:150].numpy(), y[:150].numpy(), x[150:].numpy(), y[150:].numpy())
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
    got = ev.knn_accuracy(train_x, train_y, test_x, test_y, k=k, temperature=temperature,
                          chunk=16)
    assert got == pytest.approx(expected, abs=1e-12)


def test_weighted_knn_differs_from_majority_vote_where_weights_matter():
    # one very close neighbour of class 1 against two distant ones of class 0
    train_x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.05, 1.0]])
    train_y = torch.tensor([1, 0, 0])
    test_x = torch.tensor([[1.0, 0.02]])
    assert ev.knn_accuracy(train_x, train_y, test_x, torch.tensor([1]), k=3,
                           temperature=0.1) == 1.0
    # with a huge temperature the weights are ~equal: majority (class 0) wins
    assert ev.knn_accuracy(train_x, train_y, test_x, torch.tensor([0]), k=3,
                           temperature=1e6) == 1.0


def test_knn_k1_equals_sklearn_cosine_nearest_neighbour():
    from sklearn.neighbors import KNeighborsClassifier

    train_x, train_y = blobs(120, 5, 3, spread=5.0, seed=5)
    test_x, test_y = blobs(80, 5, 3, spread=5.0, seed=6)
    clf = KNeighborsClassifier(n_neighbors=1, metric="cosine").fit(train_x.numpy(), train_y)
    expected = clf.score(test_x.numpy(), test_y.numpy())
    assert ev.knn_accuracy(train_x, train_y, test_x, test_y, k=1) == pytest.approx(expected)
    assert 0.3 < expected < 1.0


def test_knn_accuracies_agree_with_single_k_calls_and_tiny_temperature_is_finite():
    train_x, train_y = blobs(100, 6, 5, spread=5.0, seed=7)
    test_x, test_y = blobs(50, 6, 5, spread=5.0, seed=8)
    both = ev.knn_accuracies(train_x, train_y, test_x, test_y, ks=(30, 3), chunk=7)
    for k in (30, 3):
        assert both[k] == ev.knn_accuracy(train_x, train_y, test_x, test_y, k=k)
    # exp(s / 1e-4) overflows without the per-row shift; the result must stay the 1-NN answer
    tiny = ev.knn_accuracy(train_x, train_y, test_x, test_y, k=10, temperature=1e-4)
    assert tiny == ev.knn_accuracy(train_x, train_y, test_x, test_y, k=1)


# --------------------------------------------------------------------------- clustering


def test_cluster_accuracy_hungarian():
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    permuted = np.array([2, 0, 1])[y]  # clusters are a relabelling of the classes
    assert ev.cluster_accuracy(y, permuted) == 1.0
    # by hand: map cluster 1->0 (2 right), 0->1 (1 right), 2->2 (2 right): 5/6
    assert ev.cluster_accuracy([0, 0, 1, 1, 2, 2], [1, 1, 0, 2, 2, 2]) == pytest.approx(5 / 6)
    # more clusters than classes: one cluster per class at most
    assert ev.cluster_accuracy([0, 0, 0, 0], [0, 0, 1, 1]) == pytest.approx(0.5)


def test_kmeans_metrics_equal_sklearn_on_same_clustering():
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
    from sklearn.preprocessing import normalize

    x, y = blobs(150, 6, 3, spread=3.0, seed=9)
    got = ev.kmeans_metrics(x, y, seed=4)
    clusters = KMeans(n_clusters=3, n_init=10, random_state=4).fit_predict(normalize(x.numpy()))
    assert got["nmi"] == pytest.approx(normalized_mutual_info_score(y, clusters), abs=1e-9)
    assert got["ari"] == pytest.approx(adjusted_rand_score(y, clusters), abs=1e-9)
    assert got["cluster_acc"] == pytest.approx(ev.cluster_accuracy(y, clusters))
    assert 0.0 < got["ari"] < 1.0


def test_kmeans_metrics_perfect_on_separated_directions():
    x, y = blobs(90, 4, 3, spread=0.01, seed=10)
    got = ev.kmeans_metrics(x, y, n_clusters=3)
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
    got = ev.neighbourhood_accuracy(x, y, k=k, chunk=16)
    assert got == pytest.approx(neighbourhood_loop(x, y, k), abs=1e-12)


def test_neighbourhood_accuracy_matches_reference_euclidean_on_unit_vectors():
    from sklearn.neighbors import NearestNeighbors

    x, y = blobs(80, 6, 4, spread=4.0, seed=12)
    u = F.normalize(x, dim=1).numpy()
    index = NearestNeighbors(n_neighbors=6).fit(u).kneighbors(u)[1][:, 1:]
    expected = float((y.numpy()[index] == y.numpy()[:, None]).mean())
    assert ev.neighbourhood_accuracy(x, y, k=5) == pytest.approx(expected)


# --------------------------------------------------------------------------- held-out loss


def icon_by_hand(z1, z2, tau=0.5, a=0.2):
    b = z1.shape[0]
    p = (1 - a) * torch.eye(b, dtype=torch.float64) + a / b
    log_q = torch.log_softmax((z1.double() @ z2.double().T) / tau, dim=1)
    return float((p * (p.log() - log_q)).sum(1).mean())


def test_heldout_icon_loss_equals_hand_computation_and_is_deterministic():
    images = torch.randint(0, 256, (70, 1, 4, 4), dtype=torch.uint8)
    model = trained_model(16)
    got = ev.heldout_icon_loss(model, images, noisy_views, batch_size=32, seed=5)

    model.eval()
    g = torch.Generator().manual_seed(5)
    order = torch.randperm(70, generator=g)
    losses = []
    with torch.no_grad():
        for b in range(2):  # 70 // 32 full batches; the last 6 images are left out
            v1, v2 = noisy_views(images[order[b * 32 : (b + 1) * 32]], g)
            losses.append(icon_by_hand(model(v1), model(v2)))
    assert got == pytest.approx(sum(losses) / 2, rel=1e-5)

    model.train()
    again = ev.heldout_icon_loss(model, images, noisy_views, batch_size=32, seed=5)
    other = ev.heldout_icon_loss(model, images, noisy_views, batch_size=32, seed=6)
    assert again == got and other != got
    assert model.training  # restored


def test_heldout_icon_loss_rejects_batch_larger_than_data():
    with pytest.raises(ValueError, match="batch_size"):
        ev.heldout_icon_loss(trained_model(16), torch.zeros(10, 1, 4, 4, dtype=torch.uint8),
                             noisy_views, batch_size=11)


# --------------------------------------------------------------------------- features


def test_extract_features_matches_eval_forward_and_restores_modes():
    model = trained_model(12)
    model.head.eval()  # a mixed state must come back exactly
    x = torch.randn(37, 3, 2, 2)
    feats = ev.extract_features(model, x, batch_size=8)
    proj = ev.extract_features(model, x, batch_size=8, projection=True)
    assert model.training and model.backbone.training and not model.head.training
    model.eval()
    with torch.no_grad():
        assert torch.allclose(feats, model.features(x), atol=1e-6)
        assert torch.allclose(proj, model(x), atol=1e-6)
    assert feats.shape == (37, 16) and proj.shape == (37, 8) and feats.dtype == torch.float32


def test_extract_features_converts_uint8_with_to_float():
    augment = pytest.importorskip("rkdo.vision.augment")
    images = torch.randint(0, 256, (10, 1, 6, 6), dtype=torch.uint8)
    model = trained_model(64)
    got = ev.extract_features(model, images, batch_size=4, image_size=8)
    model.eval()
    with torch.no_grad():
        expected = model.features(augment.to_float(images, size=8))
    assert torch.allclose(got, expected, atol=1e-5)


def test_extract_features_rejects_image_size_for_float_images():
    with pytest.raises(ValueError, match="image_size"):
        ev.extract_features(trained_model(4), torch.zeros(2, 1, 2, 2), image_size=4)


# --------------------------------------------------------------------------- bad inputs


def test_bad_inputs_raise_value_error():
    x, y = blobs(20, 3, 2, spread=1.0, seed=13)
    with pytest.raises(ValueError, match="k must be <="):
        ev.knn_accuracy(x, y, x, y, k=21)
    with pytest.raises(ValueError, match="one label per feature row"):
        ev.knn_accuracy(x, y[:-1], x, y, k=3)
    with pytest.raises(ValueError, match="one label per feature row"):
        ev.linear_probe(x, y, x, y[:5])
    with pytest.raises(ValueError, match="same feature dimension"):
        ev.linear_probe(x, y, x[:, :2], y)
    with pytest.raises(ValueError, match="k must be <"):
        ev.neighbourhood_accuracy(x, y, k=20)
    with pytest.raises(ValueError, match="temperature"):
        ev.knn_accuracy(x, y, x, y, k=3, temperature=0.0)
    with pytest.raises(ValueError, match="integer class labels"):
        ev.kmeans_metrics(x, y.float())
    with pytest.raises(ValueError, match="n_clusters"):
        ev.kmeans_metrics(x, y, n_clusters=21)
    with pytest.raises(ValueError, match="at least two classes"):
        ev.linear_probe(x, torch.zeros(20, dtype=torch.long), x, y)


# --------------------------------------------------------------------------- protocols


def toy_splits(seed: int = 0) -> Splits:
    """Float images (already in model range) whose class sets the mean: evaluate works end to
    end without rkdo.vision.data / rkdo.augment."""
    g = torch.Generator().manual_seed(seed)

    def split(n):
        labels = torch.arange(n) % 3
        images = labels.view(-1, 1, 1, 1).float() - 1.0 + 0.5 * torch.randn(n, 1, 4, 4,
                                                                             generator=g)
        return Split(images, labels)

    return Splits(train=split(240), test=split(210))


def float_views(images, generator):
    n1 = torch.randn(images.shape, generator=generator)
    n2 = torch.randn(images.shape, generator=generator)
    return images + 0.1 * n1, images + 0.1 * n2


def test_evaluate_full_runs_each_metric_on_the_right_split():
    data = toy_splits()
    model = trained_model(16)
    got = ev.evaluate(model, data, float_views, protocol="full", seed=1)
    assert set(got) == set(ev.FULL_METRICS) | {"eval_seconds"}
    assert model.training
    train_x = ev.extract_features(model, data.train.images)
    test_x = ev.extract_features(model, data.test.images)
    ty, sy = data.train.labels, data.test.labels
    assert got["linear_probe"] == ev.linear_probe(train_x, ty, test_x, sy, seed=1)
    assert got["knn_acc_200"] == ev.knn_accuracy(train_x, ty, test_x, sy, k=200)
    assert got["knn_acc_20"] == ev.knn_accuracy(train_x, ty, test_x, sy, k=20)
    assert got["neighbourhood_acc_5"] == ev.neighbourhood_accuracy(test_x, sy, k=5)
    assert got["nmi"] == ev.kmeans_metrics(test_x, sy, seed=1)["nmi"]
    assert got["heldout_icon_loss"] == ev.heldout_icon_loss(model, data.test.images, float_views,
                                                            seed=1)
    assert got["linear_probe"] > 0.8  # the class signal is easy


def test_evaluate_protocol_choices_and_probe_subset():
    data = toy_splits()
    model = trained_model(16)
    with pytest.raises(ValueError, match=r"\('full', 'paper', 'both'\)"):
        ev.evaluate(model, data, float_views, protocol="fast")
    both = ev.evaluate(model, data, float_views, protocol="both", probe_train_size=210)
    assert set(both) == set(ev.FULL_METRICS) | set(ev.PAPER_METRICS) | {"eval_seconds"}
    paper = ev.evaluate(model, data, float_views, protocol="paper")
    assert set(paper) == set(ev.PAPER_METRICS) | {"eval_seconds"}
    subset = ev._stratified_subset(data.train.labels, 30, seed=0)
    assert subset.numel() == 30
    assert torch.bincount(data.train.labels[subset]).tolist() == [10, 10, 10]


def test_paper_protocol_equals_reference_notebook_evaluation():
    from sklearn.cluster import KMeans
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
    from sklearn.model_selection import train_test_split
    from sklearn.neighbors import NearestNeighbors

    data = toy_splits(seed=2)
    model = trained_model(16, seed=3)
    got = ev.paper_protocol(model, data.test.images, data.test.labels, n_images=150, seed=42,
                            subset="first", batch_size=64)
    # the notebooks' evaluate(), written out (first images, model(x), fixed seed 42)
    model.eval()
    with torch.no_grad():
        feats = model(data.test.images[:150]).numpy()
    labels = data.test.labels[:150].numpy()
    xa, xb, ya, yb = train_test_split(feats, labels, test_size=0.2, random_state=42)
    linear = LogisticRegression(max_iter=1000, random_state=42).fit(xa, ya).score(xb, yb)
    clusters = KMeans(n_clusters=3, random_state=42, n_init=1).fit_predict(feats)
    index = NearestNeighbors(n_neighbors=6).fit(feats).kneighbors(feats)[1][:, 1:]
    assert got["paper_linear_probe"] == pytest.approx(linear)
    assert got["paper_nmi"] == pytest.approx(normalized_mutual_info_score(labels, clusters))
    assert got["paper_ari"] == pytest.approx(adjusted_rand_score(labels, clusters))
    assert got["paper_neighbourhood_acc_5"] == pytest.approx(
        float((labels[index] == labels[:, None]).mean()))
    random_subset = ev.paper_protocol(model, data.test.images, data.test.labels, n_images=150,
                                      seed=0)
    assert random_subset != got


def test_evaluate_with_real_two_views_on_uint8_images():
    augment_module = pytest.importorskip("rkdo.vision.augment")
    g = torch.Generator().manual_seed(4)

    def split(n):
        labels = torch.arange(n) % 2
        images = (labels.view(-1, 1, 1, 1) * 120 + torch.randint(0, 100, (n, 1, 6, 6),
                                                                 generator=g)).to(torch.uint8)
        return Split(images, labels)

    data = Splits(train=split(220), test=split(130))
    augment = augment_module.TwoViews(size=8, channels=1)
    model = trained_model(64)
    got = ev.evaluate(model, data, augment, protocol="both", seed=0)
    # image_size defaults to augment.size: features are taken at 8 x 8, like the views
    test_x = ev.extract_features(model, data.test.images, image_size=8)
    assert got["neighbourhood_acc_5"] == ev.neighbourhood_accuracy(test_x, data.test.labels)
    assert got["heldout_icon_loss"] == ev.heldout_icon_loss(model, data.test.images, augment)
    assert got["linear_probe"] > 0.9
