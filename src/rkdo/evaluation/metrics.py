"""Metrics: arrays in, numbers out. How good are the features ``x_i`` with labels ``y_i``?

``s`` is cosine similarity, ``N_k(i)`` the ``k`` most similar reference points of ``i``:

    linear probe         accuracy of a multinomial logistic regression on standardized features
    weighted k-NN        y_hat(x) = argmax_c sum_{j in N_k(x)} exp(s(x, x_j) / T) [y_j = c]
                         (Wu et al. 2018, InstDisc; train split as reference set)
    k-means              NMI, ARI and  acc = max_pi 1/n sum_i [y_i = pi(c_i)]  (Hungarian matching
                         of k-means clusters c_i on L2-normalized features to classes)
    neighbourhood acc    1/n sum_i 1/k sum_{j in N_k(i), j != i} [y_j = y_i]

Features and labels may be tensors or numpy arrays; scikit-learn is imported when a metric that
uses it runs. The protocols that turn a model into these arrays are in :mod:`.protocols`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rkdo._validation import check_int, check_positive

__all__ = [
    "as_features",
    "as_labels",
    "linear_probe",
    "knn_accuracy",
    "knn_accuracies",
    "cluster_accuracy",
    "kmeans_metrics",
    "neighbourhood_accuracy",
]


# --------------------------------------------------------------------------- input checks


def as_features(x: Tensor | np.ndarray, name: str) -> Tensor:
    """``x`` as a 2-D floating CPU tensor (float64 stays float64)."""
    x = torch.as_tensor(x).detach().cpu()
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D (n, d) array, got shape {tuple(x.shape)}")
    return x if x.is_floating_point() else x.float()


def as_labels(y: Tensor | np.ndarray, n: int, name: str) -> Tensor:
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
    features = as_features(x, f"{prefix}_x")
    return features, as_labels(y, features.shape[0], f"{prefix}_y")


def _same_dim(train_x: Tensor, test_x: Tensor) -> None:
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"train_x and test_x must have the same feature dimension, got "
                         f"{train_x.shape[1]} and {test_x.shape[1]}")


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
    C = check_positive("C", C)
    max_iter = check_int("max_iter", max_iter, low=1)
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
    ks = [check_int("k", k, low=1) for k in ks]
    if not ks:
        raise ValueError("ks must name at least one k")
    if max(ks) > train_x.shape[0]:
        raise ValueError(f"k must be <= the number of train rows ({train_x.shape[0]}), "
                         f"got {max(ks)}")
    temperature = check_positive("temperature", temperature)
    chunk = check_int("chunk", chunk, low=1)
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
    n_clusters = check_int("n_clusters", n_clusters, low=1)
    if n_clusters > x.shape[0]:
        raise ValueError(f"n_clusters must be <= the number of rows ({x.shape[0]}), got "
                         f"{n_clusters}")
    n_init = check_int("n_init", n_init, low=1)
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
    k = check_int("k", k, low=1)
    chunk = check_int("chunk", chunk, low=1)
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
