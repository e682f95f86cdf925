"""Protocols: evaluate a frozen encoder, from a model and images to the metrics of :mod:`.metrics`.

The features and the held-out I-Con loss they are computed from are :mod:`.frozen`'s
(:func:`~rkdo.evaluation.frozen.extract_features`,
:func:`~rkdo.evaluation.frozen.heldout_icon_loss`, also exported here).

Two protocols (:data:`PROTOCOLS`, named in :mod:`.names` with the metric keys): ``"full"``
evaluates on the whole official test split (train split as probe / k-NN reference) and reports
:data:`FULL_METRICS`; ``"paper"`` reproduces the reference notebooks' evaluation on ~700 test
images (projection embeddings, logistic regression on an 80/20 split of them, k-means NMI/ARI,
5-NN same-label share) and reports :data:`PAPER_METRICS`, whose spread from the choice of images
alone is about as large as the differences it was used to report. ``"both"`` runs the two.

On small or custom datasets the fixed sizes (k = 200, a held-out batch of 64, ...) adapt and
the values used are reported (:mod:`.plan`); what cannot adapt is refused before any work.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rkdo._validation import check_int
from rkdo.evaluation.frozen import Augment, extract_features, heldout_icon_loss
from rkdo.evaluation.metrics import (
    as_labels,
    kmeans_metrics,
    knn_accuracies,
    linear_probe,
    neighbourhood_accuracy,
)
from rkdo.evaluation.names import FULL_METRICS, PAPER_METRICS, PROTOCOLS
from rkdo.evaluation.plan import EvalPlan, plan_evaluation

__all__ = [
    "PROTOCOLS",
    "FULL_METRICS",
    "PAPER_METRICS",
    "FULL_STAGES",
    "PAPER_STAGES",
    "extract_features",
    "heldout_icon_loss",
    "paper_protocol",
    "evaluate",
]

# the stages each protocol goes through, in order (what the progress bar names)
FULL_STAGES = ("train features", "test features", "k-NN", "k-means", "linear probe",
               "held-out loss")
PAPER_STAGES = ("paper protocol",)


class _Stages:
    """A progress bar over the evaluation's stages, naming the one running (off: no output);
    a context manager that closes the bar on exit."""

    def __init__(self, stages: tuple[str, ...], enabled: bool) -> None:
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=len(stages), unit="stage", desc="evaluating",
                            dynamic_ncols=True, leave=False)

    @classmethod
    def of(cls, protocol: str, enabled: bool) -> _Stages:
        """The stages of ``protocol`` (one of :data:`PROTOCOLS`), in order."""
        return cls((FULL_STAGES if protocol in ("full", "both") else ())
                   + (PAPER_STAGES if protocol in ("paper", "both") else ()), enabled)

    def __call__(self, name: str) -> None:
        """Mark the previous stage done and ``name`` running."""
        if self.bar is not None:
            if self.bar.postfix:
                self.bar.update(1)
            self.bar.set_postfix_str(name)

    def __enter__(self) -> _Stages:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


def _paper_subset(total: int, n_images: int, subset: str, seed: int) -> Tensor:
    """Indices of the paper protocol's images: the first ``n_images`` of ``total`` or a seeded
    random choice of them (at most ``total``)."""
    subsets = ("random", "first")
    if subset not in subsets:
        raise ValueError(f"subset must be one of {subsets}, got {subset!r}")
    n = min(check_int("n_images", n_images, low=1), total)
    if subset == "first":
        return torch.arange(n)
    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n]


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

    chosen = _paper_subset(test_images.shape[0], n_images, subset, seed)
    labels = as_labels(test_labels, test_images.shape[0], "test_labels")[chosen]
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

    size = check_int("probe_train_size", size, low=1)
    index = np.arange(labels.shape[0])
    # stratify when every class can give a row to both sides
    stratify = labels.numpy() if int(torch.bincount(labels).min()) >= 2 else None
    chosen, _ = train_test_split(index, train_size=size, stratify=stratify, random_state=seed)
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
    plan: EvalPlan,
    image_size: int | None,
    stage: Callable[[str], None],
) -> dict[str, float]:
    train_labels = as_labels(data.train.labels, data.train.images.shape[0], "data.train.labels")
    test_labels = as_labels(data.test.labels, data.test.images.shape[0], "data.test.labels")
    subset = _stratified_subset(train_labels, plan.probe_train_size, seed)
    train_images = data.train.images
    if subset is not None:
        train_images = train_images[subset.to(train_images.device)]
        train_labels = train_labels[subset]

    def features(images: Tensor) -> Tensor:
        return extract_features(model, images, batch_size=batch_size, projection=projection,
                                device=device, image_size=image_size)

    stage("train features")
    train_x = features(train_images)
    stage("test features")
    test_x = features(data.test.images)
    stage("k-NN")
    k_200, k_20 = plan.knn_ks
    knn = knn_accuracies(train_x, train_labels, test_x, test_labels, ks=plan.knn_ks)
    neighbourhood = neighbourhood_accuracy(test_x, test_labels, k=plan.neighbourhood_k)
    stage("k-means")
    clustering = kmeans_metrics(test_x, test_labels, seed=seed)
    stage("linear probe")
    probe = linear_probe(train_x, train_labels, test_x, test_labels, seed=seed)
    stage("held-out loss")
    heldout = heldout_icon_loss(model, data.test.images, augment, batch_size=plan.heldout_batch,
                                seed=seed, device=device)
    return {
        "linear_probe": probe,
        "knn_acc_200": knn[k_200],
        "knn_acc_20": knn[k_20],
        "nmi": clustering["nmi"],
        "ari": clustering["ari"],
        "cluster_acc": clustering["cluster_acc"],
        "neighbourhood_acc_5": neighbourhood,
        "heldout_icon_loss": heldout,
        **plan.adapted,
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
    progress: bool = False,
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
        progress: show a progress bar over the stages (:data:`FULL_STAGES`,
            :data:`PAPER_STAGES`) on stderr, naming the one running.

    Every protocol adds ``eval_seconds``, the wall time of the call. On small datasets the
    sizes adapt and the values used are added (:func:`~rkdo.evaluation.plan.plan_evaluation`);
    splits that cannot be evaluated are refused before any feature is computed.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    plan = plan_evaluation(torch.as_tensor(data.train.labels), torch.as_tensor(data.test.labels),
                           protocol, probe_train_size)
    started = time.perf_counter()
    image_size = getattr(augment, "size", None) if image_size is None else image_size
    with _Stages.of(protocol, progress) as stage:
        metrics = {} if protocol == "paper" else _full_protocol(
            model, data, augment, projection=projection, seed=seed, device=device,
            batch_size=batch_size, plan=plan, image_size=image_size, stage=stage)
        if protocol != "full":
            stage("paper protocol")
            metrics.update(paper_protocol(
                model, data.test.images, data.test.labels, seed=seed, batch_size=batch_size,
                device=device, image_size=image_size))
    metrics["eval_seconds"] = time.perf_counter() - started
    return metrics
