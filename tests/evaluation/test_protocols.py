"""Tests for rkdo.evaluation.frozen (features, the held-out loss) and rkdo.evaluation.protocols,
against a hand computation or the metrics it is made of."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rkdo.evaluation import frozen as fz
from rkdo.evaluation import metrics as mt
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



def trained_model(in_dim: int, seed: int = 0) -> TinyEncoder:
    torch.manual_seed(seed)
    model = TinyEncoder(in_dim)
    model.train()
    with torch.no_grad():  # give batch norm non-trivial running statistics
        model(torch.randn(64, in_dim) * 2 + 1)
    return model



# --------------------------------------------------------------------------- held-out loss


def icon_by_hand(z1, z2, tau=0.5, a=0.2):
    b = z1.shape[0]
    p = (1 - a) * torch.eye(b, dtype=torch.float64) + a / b
    log_q = torch.log_softmax((z1.double() @ z2.double().T) / tau, dim=1)
    return float((p * (p.log() - log_q)).sum(1).mean())


def test_heldout_icon_loss_equals_hand_computation_and_is_deterministic():
    images = torch.randint(0, 256, (70, 1, 4, 4), dtype=torch.uint8)
    model = trained_model(16)
    got = fz.heldout_icon_loss(model, images, noisy_views, batch_size=32, seed=5)

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
    again = fz.heldout_icon_loss(model, images, noisy_views, batch_size=32, seed=5)
    other = fz.heldout_icon_loss(model, images, noisy_views, batch_size=32, seed=6)
    assert again == got and other != got
    assert model.training  # restored


def test_heldout_icon_loss_rejects_batch_larger_than_data():
    with pytest.raises(ValueError, match="batch_size"):
        fz.heldout_icon_loss(trained_model(16), torch.zeros(10, 1, 4, 4, dtype=torch.uint8),
                             noisy_views, batch_size=11)


# --------------------------------------------------------------------------- features


def test_extract_features_matches_eval_forward_and_restores_modes():
    model = trained_model(12)
    model.head.eval()  # a mixed state must come back exactly
    x = torch.randn(37, 3, 2, 2)
    feats = fz.extract_features(model, x, batch_size=8)
    proj = fz.extract_features(model, x, batch_size=8, projection=True)
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
    got = fz.extract_features(model, images, batch_size=4, image_size=8)
    model.eval()
    with torch.no_grad():
        expected = model.features(augment.to_float(images, size=8))
    assert torch.allclose(got, expected, atol=1e-5)


def test_extract_features_rejects_image_size_for_float_images():
    with pytest.raises(ValueError, match="image_size"):
        fz.extract_features(trained_model(4), torch.zeros(2, 1, 2, 2), image_size=4)



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
    train_x = fz.extract_features(model, data.train.images)
    test_x = fz.extract_features(model, data.test.images)
    ty, sy = data.train.labels, data.test.labels
    assert got["linear_probe"] == mt.linear_probe(train_x, ty, test_x, sy, seed=1)
    assert got["knn_acc_200"] == mt.knn_accuracy(train_x, ty, test_x, sy, k=200)
    assert got["knn_acc_20"] == mt.knn_accuracy(train_x, ty, test_x, sy, k=20)
    assert got["neighbourhood_acc_5"] == mt.neighbourhood_accuracy(test_x, sy, k=5)
    assert got["nmi"] == mt.kmeans_metrics(test_x, sy, seed=1)["nmi"]
    assert got["heldout_icon_loss"] == fz.heldout_icon_loss(model, data.test.images, float_views,
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
    test_x = fz.extract_features(model, data.test.images, image_size=8)
    assert got["neighbourhood_acc_5"] == mt.neighbourhood_accuracy(test_x, data.test.labels)
    assert got["heldout_icon_loss"] == fz.heldout_icon_loss(model, data.test.images, augment)
    assert got["linear_probe"] > 0.9
