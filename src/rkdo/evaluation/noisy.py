"""The label-noise protocol: what a frozen encoder trained on noisy labels gives, on clean tests.

For a training split with noisy labels ``y~`` (clean labels ``y`` known to the evaluation only),
backbone features ``x = f(image)`` and the clean test split:

    clean_probe        logistic regression on a small clean labelled subset (``probe_size``
                       training images, class-stratified, seeded), scored on the test split:
                       the quality of the representation
    knn_noisy_20/200   weighted k-NN on the test split with *all* training images as reference,
                       labelled ``y~``: what a user with only the noisy labels gets
    head_acc           when the loss trained a classifier head (cross-entropy rows): the test
                       accuracy of ``argmax head(g(f(image)))``, its own prediction
    label_noise_share  the realised share of training labels with ``y~ != y``

The test labels are the dataset's own (clean); noise is only ever applied to training labels.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from rkdo.evaluation.frozen import extract_features
from rkdo.evaluation.metrics import knn_accuracies, linear_probe
from rkdo.vision.noise import stratified_subset

__all__ = ["NOISY_METRICS", "evaluate_noisy"]

NOISY_METRICS = ("clean_probe", "knn_noisy_20", "knn_noisy_200", "head_acc", "label_noise_share")


def evaluate_noisy(
    model: nn.Module,
    data: object,
    clean_train_labels: Tensor,
    *,
    probe_size: int = 1000,
    seed: int = 0,
    device: torch.device | str | None = None,
    image_size: int | None = None,
    classify: Callable[[Tensor], Tensor] | None = None,
    batch_size: int = 512,
) -> dict[str, float]:
    """The metrics of the module docstring; ``data`` has ``.train`` (noisy labels) and ``.test``
    (clean), each with uint8 ``images`` and int64 ``labels``."""
    started = time.perf_counter()
    train, test = data.train, data.test  # type: ignore[attr-defined]
    clean = torch.as_tensor(clean_train_labels, dtype=torch.long)
    if clean.shape != train.labels.shape:
        raise ValueError(f"clean_train_labels has shape {tuple(clean.shape)}, the training split "
                         f"{tuple(train.labels.shape)}")
    n_train = int(train.labels.numel())
    probe_size = min(int(probe_size), n_train)
    options = dict(batch_size=batch_size, device=device, image_size=image_size)
    train_x = extract_features(model, train.images, **options)
    test_x = extract_features(model, test.images, **options)
    ks = tuple(min(k, n_train) for k in (20, 200))
    knn = knn_accuracies(train_x, train.labels, test_x, test.labels, ks=ks)
    subset = stratified_subset(clean, probe_size, seed)
    metrics = {
        "clean_probe": linear_probe(train_x[subset], clean[subset], test_x, test.labels,
                                    seed=seed),
        "knn_noisy_20": knn[ks[0]],
        "knn_noisy_200": knn[ks[1]],
        "label_noise_share": float((train.labels != clean).double().mean()),
    }
    if classify is not None:
        z = extract_features(model, test.images, projection=True, **options)
        with torch.no_grad():
            logits = classify(z.to(next(model.parameters()).device)).float().cpu()
        metrics["head_acc"] = float((logits.argmax(dim=1) == test.labels).double().mean())
    metrics["eval_seconds"] = time.perf_counter() - started
    return metrics
