"""What an evaluation can do with a dataset's sizes, decided before any feature is computed.

The protocols' fixed sizes fit the benchmark datasets; on a small or custom dataset each one
adapts where a sensible smaller value exists, and the value used is recorded:

    k-NN                 k = min(200, n_ref), min(20, n_ref)        (recorded as knn_k_200, ...)
    neighbourhood acc    k = min(5, n_test - 1)                     (neighbourhood_k)
    held-out I-Con loss  batch = min(64, n_test)                    (heldout_batch_size)
    probe subset         all n_train rows if probe_train_size >= n_train - classes
                                                                    (probe_train_size_used)

and refuses otherwise, naming the setting: a split with one class, fewer than 2 test images,
a probe subset smaller than the number of classes, the paper protocol on fewer than 20 images.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from rkdo._validation import check_int

__all__ = ["EvalPlan", "plan_evaluation", "PAPER_MIN_IMAGES"]

PAPER_MIN_IMAGES = 20
_KNN_KS = (200, 20)
_NEIGHBOURHOOD_K = 5
_HELDOUT_BATCH = 64


@dataclass(frozen=True)
class EvalPlan:
    """The sizes an evaluation uses, and the ones it adapted (``adapted``: key -> value)."""

    knn_ks: tuple[int, ...] = _KNN_KS
    neighbourhood_k: int = _NEIGHBOURHOOD_K
    heldout_batch: int = _HELDOUT_BATCH
    probe_train_size: int | None = None
    adapted: dict[str, int] = field(default_factory=dict)


def _classes(labels: Tensor) -> int:
    return int(torch.unique(labels).numel())


def plan_evaluation(train_labels: Tensor, test_labels: Tensor, protocol: str = "full",
                    probe_train_size: int | None = None) -> EvalPlan:
    """The :class:`EvalPlan` for splits with these labels, or a ``ValueError`` saying what to
    change (``--probe-train-size``, ``--eval-protocol``, the data)."""
    n_train, n_test = int(train_labels.shape[0]), int(test_labels.shape[0])
    if n_test < 2:
        raise ValueError(f"the test split has {n_test} image(s); evaluation needs at least 2 "
                         "(add test images, or use --eval-protocol none)")
    if protocol in ("paper", "both") and n_test < PAPER_MIN_IMAGES:
        raise ValueError(f"--eval-protocol {protocol}: the paper protocol needs at least "
                         f"{PAPER_MIN_IMAGES} test images, got {n_test}; use --eval-protocol "
                         "full")
    if protocol == "paper":
        return EvalPlan()
    classes = _classes(train_labels)
    if classes < 2:
        raise ValueError(f"the training split has {classes} class; the linear probe needs at "
                         "least 2 (add a class folder, or use --eval-protocol none)")
    adapted: dict[str, int] = {}
    if probe_train_size is not None:
        probe_train_size = check_int("--probe-train-size", probe_train_size, low=1)
        if probe_train_size < classes:
            raise ValueError(f"--probe-train-size {probe_train_size} is smaller than the "
                             f"{classes} classes; use at least {classes}")
        if probe_train_size > n_train - classes:
            # a stratified subset must leave a row of every class out: use them all instead
            probe_train_size = None
            adapted["probe_train_size_used"] = n_train
    n_ref = n_train if probe_train_size is None else probe_train_size
    knn_ks = tuple(min(k, n_ref) for k in _KNN_KS)
    for k, used in zip(_KNN_KS, knn_ks, strict=True):
        if used != k:
            adapted[f"knn_k_{k}"] = used
    neighbourhood_k = min(_NEIGHBOURHOOD_K, n_test - 1)
    if neighbourhood_k != _NEIGHBOURHOOD_K:
        adapted["neighbourhood_k"] = neighbourhood_k
    heldout_batch = min(_HELDOUT_BATCH, n_test)
    if heldout_batch != _HELDOUT_BATCH:
        adapted["heldout_batch_size"] = heldout_batch
    return EvalPlan(knn_ks, neighbourhood_k, heldout_batch, probe_train_size, adapted)
