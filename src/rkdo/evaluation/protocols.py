"""Probes and metrics: how good is a frozen encoder's representation?

Every metric reads features ``x_i`` of held-out images with labels ``y_i`` (``s`` is cosine
similarity, ``N_k(i)`` the ``k`` most similar reference points of ``i``):

    linear probe         accuracy of a multinomial logistic regression on standardized features
    weighted k-NN        y_hat(x) = argmax_c sum_{j in N_k(x)} exp(s(x, x_j) / T) [y_j = c]
                         (Wu et al. 2018, InstDisc; train split as reference set)
    k-means              NMI, ARI and  acc = max_pi 1/n sum_i [y_i = pi(c_i)]  (Hungarian matching
                         of k-means clusters c_i on L2-normalized features to classes)
    neighbourhood acc    1/n sum_i 1/k sum_{j in N_k(i), j != i} [y_j = y_i]
    held-out I-Con loss  1/n sum_i KL(p(.|i) || q(.|i)) of ``IConLoss(temperature=0.5,
                         debias=0.2)`` on fixed two-view batches of held-out images: the same
                         static yardstick for every training method

Two protocols: ``"full"`` evaluates on the whole official test split (train split as probe /
k-NN reference); ``"paper"`` reproduces the reference notebooks' evaluation on ~700 test images
(projection embeddings, logistic regression on an 80/20 split of them, k-means NMI/ARI, 5-NN
same-label share), whose spread from the choice of images alone is about as large as the
differences it was used to report.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rkdo.losses import IConLoss

__all__ = [
    "PROTOCOLS",
    "FULL_METRICS",
    "PAPER_METRICS",
    "extract_features",
    "linear_probe",
    "knn_accuracy",
    "knn_accuracies",
    "cluster_accuracy",
    "kmeans_metrics",
    "neighbourhood_accuracy",
    "heldout_icon_loss",
    "paper_protocol",
    "evaluate",
]

PROTOCOLS = ("full", "paper", "both")
FULL_METRICS = (
    "linear_probe",
    "knn_acc_200",
    "knn_acc_20",
    "nmi",
    "ari",
    "cluster_acc",
    "neighbourhood_acc_5",
    "heldout_icon_loss",
)
PAPER_METRICS = ("paper_linear_probe", "paper_nmi", "paper_ari", "paper_neighbourhood_acc_5")

Augment = Callable[[Tensor, torch.Generator], tuple[Tensor, Tensor]]


# --------------------------------------------------------------------------- input checks


def _features(x: Tensor | np.ndarray, name: str) -> Tensor:
    """``x`` as a 2-D floating CPU tensor (float64 stays float64)."""
    x = torch.as_tensor(x).detach().cpu()
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D (n, d) array, got shape {tuple(x.shape)}")
    return x if x.is_floating_point() else x.float()


def _labels(y: Tensor | np.ndarray, n: int, name: str) -> Tensor:
    """``y`` as a 1-D int64 CPU tensor of length ``n`` with non-negative entries."""
    y = torch.as_tensor(y).detach().cpu()
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"{name} must be 1-D with one label per feature row ({n}), got shape "
                         f"{tuple(y.shape)}")
    if y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    y = y.long()
    if y.numel() and int(y.min()) < 0:
        raise ValueError(f"{name} must hold non-negative class labels, got min {int(y.min())}")
    return y


def _labelled(x: Any, y: Any, prefix: str) -> tuple[Tensor, Tensor]:
    features = _features(x, f"{prefix}_x")
    return features, _labels(y, features.shape[0], f"{prefix}_y")


def _same_dim(train_x: Tensor, test_x: Tensor) -> None:
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"train_x and test_x must have the same feature dimension, got "
                         f"{train_x.shape[1]} and {test_x.shape[1]}")


def _positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _model_device(model: nn.Module, device: torch.device | str | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


class _EvalMode:
    """Put every submodule in eval mode; restore each one's own flag on exit."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.modes: list[tuple[nn.Module, bool]] = []

    def __enter__(self) -> nn.Module:
        self.modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        return self.model

    def __exit__(self, *exc: object) -> None:
        for module, training in self.modes:
            module.training = training


# --------------------------------------------------------------------------- features


@torch.no_grad()
def extract_features(
    model: nn.Module,
    images: Tensor,
    *,
    batch_size: int = 512,
    projection: bool = False,
    device: torch.device | str | None = None,
    image_size: int | None = None,
) -> Tensor:
    """Frozen features of ``images``, computed batch by batch in eval mode.

    Args:
        model: an encoder with ``features(x)`` (backbone) and ``forward(x)`` (projection,
            L2-normalized embedding), e.g. :class:`rkdo.vision.models.EmbeddingModel`.
        images: ``(N, C, H, W)`` uint8 images (converted per batch with
            :func:`rkdo.vision.augment.to_float`, i.e. to [-1, 1], resized to ``image_size`` if given),
            or float images already in the model's input range (passed unchanged).
        batch_size: images per forward pass.
        projection: return ``model(x)`` (the projection embedding) instead of
            ``model.features(x)``.
        device: where to run the model; default: where its parameters are.
        image_size: side length to resize uint8 images to (the training resolution).

    Returns:
        ``(N, D)`` float32 features on the CPU. The model's train/eval flags are restored.
    """
    batch_size = _positive_int("batch_size", batch_size)
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    is_uint8 = images.dtype == torch.uint8
    if not is_uint8 and not images.is_floating_point():
        raise ValueError(f"images must be uint8 or floating point, got dtype {images.dtype}")
    if not is_uint8 and image_size is not None:
        raise ValueError("image_size resizes uint8 images only; pass float images at the model's "
                         "input size, or uint8 images")
    if is_uint8:
        from rkdo.vision.augment import to_float
    if not projection and not callable(getattr(model, "features", None)):
        raise ValueError("model has no features(x) method; pass projection=True to use model(x)")
    device = _model_device(model, device)
    encode = model if projection else model.features
    chunks = []
    with _EvalMode(model):
        for start in range(0, images.shape[0], batch_size):
            batch = images[start : start + batch_size].to(device, non_blocking=True)
            x = to_float(batch, size=image_size) if is_uint8 else batch
            chunks.append(encode(x).float().cpu())
    if not chunks:
        raise ValueError("images is empty")
    return torch.cat(chunks)


# --------------------------------------------------------------------------- linear probe


def linear_probe(
    train_x: Tensor | np.ndarray,
    train_y: Tensor | np.ndarray,
    test_x: Tensor | np.ndarray,
    test_y: Tensor | np.ndarray,
    *,
    C: float = 1.0,
    max_iter: int = 1000,
    seed: int = 0,
    standardize: bool = True,
) -> float:
    """Test accuracy of a multinomial logistic regression trained on ``train_x``.

    scikit-learn's ``LogisticRegression`` (L-BFGS, L2 penalty ``1/C``) on features standardized
    with the train split's mean and standard deviation (``standardize=False``: raw features,
    as the reference notebooks did). L-BFGS stops at ``max_iter`` iterations; scikit-learn then
    warns ``ConvergenceWarning``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_x, train_y = _labelled(train_x, train_y, "train")
    test_x, test_y = _labelled(test_x, test_y, "test")
    _same_dim(train_x, test_x)
    if C <= 0:
        raise ValueError(f"C must be > 0, got {C!r}")
    max_iter = _positive_int("max_iter", max_iter)
    if torch.unique(train_y).numel() < 2:
        raise ValueError("train_y must contain at least two classes for a linear probe")
    classifier = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    steps = [StandardScaler(), classifier] if standardize else [classifier]
    probe = make_pipeline(*steps)
    probe.fit(train_x.numpy(), train_y.numpy())
    return float(probe.score(test_x.numpy(), test_y.numpy()))


# --------------------------------------------------------------------------- k-NN


def knn_accuracies(
    train_x: Tensor | np.ndarray,
    train_y: Tensor | np.ndarray,
    test_x: Tensor | np.ndarray,
    test_y: Tensor | np.ndarray,
    *,
    ks: Sequence[int] = (200, 20),
    temperature: float = 0.1,
    num_classes: int | None = None,
    chunk: int = 1024,
) -> dict[int, float]:
    """Weighted k-NN accuracy for several ``k`` from one similarity pass (see
    :func:`knn_accuracy`); returns ``{k: accuracy}``."""
    train_x, train_y = _labelled(train_x, train_y, "train")
    test_x, test_y = _labelled(test_x, test_y, "test")
    _same_dim(train_x, test_x)
    ks = [_positive_int("k", k) for k in ks]
    if not ks:
        raise ValueError("ks must name at least one k")
    if max(ks) > train_x.shape[0]:
        raise ValueError(f"k must be <= the number of train rows ({train_x.shape[0]}), "
                         f"got {max(ks)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    chunk = _positive_int("chunk", chunk)
    classes = int(max(train_y.max(), test_y.max())) + 1
    if num_classes is not None:
        if num_classes < classes:
            raise ValueError(f"num_classes must exceed the largest label ({classes - 1}), got "
                             f"{num_classes!r}")
        classes = int(num_classes)
    dtype = torch.promote_types(train_x.dtype, test_x.dtype)
    reference = F.normalize(train_x.to(dtype), dim=1)
    queries = F.normalize(test_x.to(dtype), dim=1)
    k_max = max(ks)
    correct = dict.fromkeys(ks, 0)
    for start in range(0, queries.shape[0], chunk):
        similarity = queries[start : start + chunk] @ reference.T
        top, index = similarity.topk(k_max, dim=1)  # sorted: the first k are the k nearest
        # exp(s / T) up to a per-row factor exp(s_max / T), which leaves the argmax unchanged.
        weight = torch.exp((top - top[:, :1]) / temperature)
        neighbour_labels = train_y[index]
        truth = test_y[start : start + chunk]
        for k in ks:
            votes = torch.zeros(top.shape[0], classes, dtype=dtype)
            votes.scatter_add_(1, neighbour_labels[:, :k], weight[:, :k])
            correct[k] += int((votes.argmax(dim=1) == truth).sum())
    return {k: correct[k] / queries.shape[0] for k in ks}


def knn_accuracy(
    train_x: Tensor | np.ndarray,
    train_y: Tensor | np.ndarray,
    test_x: Tensor | np.ndarray,
    test_y: Tensor | np.ndarray,
    *,
    k: int = 200,
    temperature: float = 0.1,
    num_classes: int | None = None,
    chunk: int = 1024,
) -> float:
    """Weighted k-NN accuracy (InstDisc, Wu et al. 2018) of ``test_x`` against ``train_x``.

    Each test point takes its ``k`` most cosine-similar train points; class ``c`` gets the vote
    ``sum_j exp(s_j / temperature) [y_j = c]`` and the largest vote is the prediction (ties go
    to the smaller class index). Test rows are processed ``chunk`` at a time, so memory is
    ``chunk x n_train``.
    """
    return knn_accuracies(
        train_x, train_y, test_x, test_y,
        ks=(k,), temperature=temperature, num_classes=num_classes, chunk=chunk,
    )[int(k)]


# --------------------------------------------------------------------------- clustering


def cluster_accuracy(y_true: Tensor | np.ndarray, y_pred: Tensor | np.ndarray) -> float:
    """``max_pi 1/n sum_i [y_i = pi(c_i)]`` over one-to-one maps ``pi`` from clusters to classes
    (the Hungarian algorithm on the class x cluster contingency table)."""
    from scipy.optimize import linear_sum_assignment
    from sklearn.metrics.cluster import contingency_matrix

    y_true = np.asarray(torch.as_tensor(y_true).cpu())
    y_pred = np.asarray(torch.as_tensor(y_pred).cpu())
    if y_true.ndim != 1 or y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"y_true and y_pred must be non-empty 1-D arrays of the same length, got "
                         f"shapes {y_true.shape} and {y_pred.shape}")
    table = contingency_matrix(y_true, y_pred)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / y_true.size)


def kmeans_metrics(
    x: Tensor | np.ndarray,
    y: Tensor | np.ndarray,
    *,
    n_clusters: int | None = None,
    seed: int = 0,
    n_init: int = 10,
    normalize: bool = True,
) -> dict[str, float]:
    """k-means on (L2-normalized) features, scored against the labels.

    ``n_clusters`` defaults to the number of distinct labels. Returns ``{"nmi", "ari",
    "cluster_acc"}``: scikit-learn's normalized mutual information (arithmetic mean) and
    adjusted Rand index, and :func:`cluster_accuracy`.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    x, y = _labelled(x, y, "x")
    if n_clusters is None:
        n_clusters = int(torch.unique(y).numel())
    n_clusters = _positive_int("n_clusters", n_clusters)
    if n_clusters > x.shape[0]:
        raise ValueError(f"n_clusters must be <= the number of rows ({x.shape[0]}), got "
                         f"{n_clusters}")
    n_init = _positive_int("n_init", n_init)
    features = F.normalize(x, dim=1) if normalize else x
    clusters = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=seed).fit_predict(
        features.numpy()
    )
    labels = y.numpy()
    return {
        "nmi": float(normalized_mutual_info_score(labels, clusters)),
        "ari": float(adjusted_rand_score(labels, clusters)),
        "cluster_acc": cluster_accuracy(labels, clusters),
    }


# --------------------------------------------------------------------------- neighbourhoods


def neighbourhood_accuracy(
    x: Tensor | np.ndarray, y: Tensor | np.ndarray, *, k: int = 5, chunk: int = 1024
) -> float:
    """Share of each point's ``k`` nearest neighbours (cosine, itself excluded) that have its
    label, averaged over points. Rows are processed ``chunk`` at a time."""
    x, y = _labelled(x, y, "x")
    k = _positive_int("k", k)
    chunk = _positive_int("chunk", chunk)
    n = x.shape[0]
    if k >= n:
        raise ValueError(f"k must be < the number of rows ({n}), since a point is not its own "
                         f"neighbour, got {k}")
    features = F.normalize(x, dim=1)
    same = 0.0
    for start in range(0, n, chunk):
        rows = torch.arange(start, min(start + chunk, n))
        similarity = features[rows] @ features.T
        similarity[torch.arange(rows.numel()), rows] = float("-inf")
        index = similarity.topk(k, dim=1).indices
        same += float((y[index] == y[rows, None]).sum())
    return same / (n * k)


# --------------------------------------------------------------------------- held-out loss


@torch.no_grad()
def heldout_icon_loss(
    model: nn.Module,
    images: Tensor,
    augment: Augment,
    *,
    batch_size: int = 64,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> float:
    """The static I-Con loss on held-out images: one yardstick for every training method.

    The images are shuffled by a generator seeded with ``seed``, cut into
    ``len(images) // batch_size`` full batches, and each batch gives two views
    ``augment(batch, generator)`` from the same generator, so every model sees the same views.
    Returns the mean over batches of ``IConLoss(temperature=0.5, debias=0.2)(model(v1),
    model(v2))``, computed in eval mode (the model's train/eval flags are restored).
    """
    batch_size = _positive_int("batch_size", batch_size)
    n_batches = images.shape[0] // batch_size
    if n_batches == 0:
        raise ValueError(f"batch_size must be <= the number of images ({images.shape[0]}), got "
                         f"{batch_size}")
    device = _model_device(model, device)
    loss_fn = IConLoss(temperature=0.5, debias=0.2)
    generator = torch.Generator(device=images.device).manual_seed(seed)
    order = torch.randperm(images.shape[0], generator=generator, device=images.device)
    total = 0.0
    with _EvalMode(model):
        for b in range(n_batches):
            batch = images[order[b * batch_size : (b + 1) * batch_size]]
            view1, view2 = augment(batch, generator)
            z1 = model(view1.to(device, non_blocking=True))
            z2 = model(view2.to(device, non_blocking=True))
            total += float(loss_fn(z1, z2))
    return total / n_batches


# --------------------------------------------------------------------------- protocols


def paper_protocol(
    model: nn.Module,
    test_images: Tensor,
    test_labels: Tensor,
    *,
    n_images: int = 704,
    seed: int = 0,
    subset: str = "random",
    projection: bool = True,
    batch_size: int = 512,
    device: torch.device | str | None = None,
    image_size: int | None = None,
) -> dict[str, float]:
    """The reference notebooks' evaluation, on a few hundred test images.

    The notebooks embed the first 11 test batches (704 images at batch 64, 352 for STL-10 at
    batch 32) with the full model (``projection=True``), then report: a logistic regression
    (raw features, ``max_iter=1000``) trained on a random 80% of them and scored on the other
    20%; k-means (one k-means++ start, as scikit-learn's ``n_init="auto"``) NMI and ARI; and the
    share of the 5 nearest neighbours with the same label.

    ``subset="first"`` takes the first ``n_images`` test images as they did; ``"random"`` a
    seeded random subset, so that repeating with other seeds shows the spread due to the choice
    of images. ``seed`` also drives the 80/20 split, the probe and k-means (the notebooks used
    42). At most ``len(test_images)`` images are used. Keys are prefixed ``paper_``.
    """
    from sklearn.model_selection import train_test_split

    subsets = ("random", "first")
    if subset not in subsets:
        raise ValueError(f"subset must be one of {subsets}, got {subset!r}")
    n_images = _positive_int("n_images", n_images)
    test_labels = _labels(test_labels, test_images.shape[0], "test_labels")
    n = min(n_images, test_images.shape[0])
    if subset == "first":
        chosen = torch.arange(n)
    else:
        chosen = torch.randperm(
            test_images.shape[0], generator=torch.Generator().manual_seed(seed)
        )[:n]
    labels = test_labels[chosen]
    features = extract_features(
        model, test_images[chosen.to(test_images.device)], batch_size=batch_size,
        projection=projection, device=device, image_size=image_size,
    )
    fit_x, score_x, fit_y, score_y = train_test_split(
        features.numpy(), labels.numpy(), test_size=0.2, random_state=seed
    )
    clustering = kmeans_metrics(features, labels, seed=seed, n_init=1, normalize=False)
    return {
        "paper_linear_probe": linear_probe(
            fit_x, fit_y, score_x, score_y, max_iter=1000, seed=seed, standardize=False
        ),
        "paper_nmi": clustering["nmi"],
        "paper_ari": clustering["ari"],
        "paper_neighbourhood_acc_5": neighbourhood_accuracy(features, labels, k=5),
    }


def _stratified_subset(labels: Tensor, size: int | None, seed: int) -> Tensor | None:
    """Indices of a seeded, class-stratified subset of ``size`` rows (None: keep all)."""
    if size is None or size >= labels.shape[0]:
        return None
    from sklearn.model_selection import train_test_split

    size = _positive_int("probe_train_size", size)
    index = np.arange(labels.shape[0])
    chosen, _ = train_test_split(
        index, train_size=size, stratify=labels.numpy(), random_state=seed
    )
    return torch.as_tensor(np.sort(chosen))


def _full_protocol(
    model: nn.Module,
    data: Any,
    augment: Augment,
    *,
    projection: bool,
    seed: int,
    device: torch.device | str | None,
    batch_size: int,
    probe_train_size: int | None,
    image_size: int | None,
) -> dict[str, float]:
    train_labels = _labels(data.train.labels, data.train.images.shape[0], "data.train.labels")
    test_labels = _labels(data.test.labels, data.test.images.shape[0], "data.test.labels")
    subset = _stratified_subset(train_labels, probe_train_size, seed)
    train_images = data.train.images
    if subset is not None:
        train_images = train_images[subset.to(train_images.device)]
        train_labels = train_labels[subset]

    def features(images: Tensor) -> Tensor:
        return extract_features(model, images, batch_size=batch_size, projection=projection,
                                device=device, image_size=image_size)

    train_x, test_x = features(train_images), features(data.test.images)
    knn = knn_accuracies(train_x, train_labels, test_x, test_labels, ks=(200, 20))
    clustering = kmeans_metrics(test_x, test_labels, seed=seed)
    return {
        "linear_probe": linear_probe(train_x, train_labels, test_x, test_labels, seed=seed),
        "knn_acc_200": knn[200],
        "knn_acc_20": knn[20],
        "nmi": clustering["nmi"],
        "ari": clustering["ari"],
        "cluster_acc": clustering["cluster_acc"],
        "neighbourhood_acc_5": neighbourhood_accuracy(test_x, test_labels, k=5),
        "heldout_icon_loss": heldout_icon_loss(
            model, data.test.images, augment, seed=seed, device=device
        ),
    }


def evaluate(
    model: nn.Module,
    data: Any,
    augment: Augment,
    *,
    protocol: str = "full",
    projection: bool = False,
    seed: int = 0,
    device: torch.device | str | None = None,
    batch_size: int = 512,
    probe_train_size: int | None = None,
    image_size: int | None = None,
) -> dict[str, float]:
    """Evaluate a frozen encoder on a dataset; returns ``{metric: value}``.

    Args:
        model: encoder with ``features(x)`` and ``forward(x)`` (see :func:`extract_features`).
        data: splits with ``.train`` and ``.test``, each holding uint8 ``images`` (N, C, H, W)
            and int64 ``labels`` (:class:`rkdo.vision.data.DatasetSplits`).
        augment: the two-view augmentation ``augment(images, generator) -> (v1, v2)`` used for
            the held-out I-Con loss (:class:`rkdo.vision.augment.TwoViews`).
        protocol: ``"full"`` (:data:`FULL_METRICS` on the whole test split: linear probe and
            k-NN with the train split as reference, k-means, 5-NN neighbourhood accuracy and the
            held-out I-Con loss on the test split), ``"paper"`` (:data:`PAPER_METRICS`, see
            :func:`paper_protocol`) or ``"both"``.
        projection: evaluate the projection embedding ``model(x)`` instead of backbone features
            in the full protocol (the paper protocol always uses the embedding, as the
            notebooks did).
        seed: seeds the probe subset, k-means, the held-out views and the paper subset/split.
        device: where to run the model; default: where its parameters are.
        batch_size: images per forward pass when extracting features.
        probe_train_size: use a seeded, class-stratified subset of this many train images as
            the probe / k-NN reference set (bounds the time on large train splits).
        image_size: resize images to this side length; default ``augment.size`` when the
            augmentation has one (features are taken at the training resolution).

    Every protocol adds ``eval_seconds``, the wall time of the call.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    started = time.perf_counter()
    if image_size is None:
        image_size = getattr(augment, "size", None)
    metrics: dict[str, float] = {}
    if protocol in ("full", "both"):
        metrics.update(_full_protocol(
            model, data, augment, projection=projection, seed=seed, device=device,
            batch_size=batch_size, probe_train_size=probe_train_size, image_size=image_size,
        ))
    if protocol in ("paper", "both"):
        metrics.update(paper_protocol(
            model, data.test.images, data.test.labels, seed=seed, batch_size=batch_size,
            device=device, image_size=image_size,
        ))
    metrics["eval_seconds"] = time.perf_counter() - started
    return metrics

