"""Label noise on a training split: symmetric or class-dependent flips, seeded and exact.

For ``n`` labels, a rate ``r`` and a seed:

    symmetric    exactly round(r n) samples, drawn uniformly without replacement, each get a
                 label drawn uniformly from the *other* C - 1 classes:
                     P(noisy = j | clean = i) = (1 - r) 1[i = j] + r / (C - 1) 1[i != j]
    asymmetric   within every class c of a flip pair (c, pair(c)), exactly round(r n_c) of its
                 samples get the label pair(c); the other classes are untouched:
                     P(noisy = pair(i) | clean = i) = r,   P(noisy = i | clean = i) = 1 - r
                 Fashion-MNIST's pairs (:data:`FASHION_PAIRS`): T-shirt/top <-> Shirt,
                 Pullover <-> Coat, Sneaker <-> Ankle boot, so the overall rate is 0.6 r.

The flips depend only on ``(labels, rate, kind, seed)``; every method trained with one seed sees
the same noisy labels (paired comparisons), and the test split is never touched (the trainer
applies noise to the training split only).
"""

from __future__ import annotations

import torch
from torch import Tensor

from rkdo.vision.catalogue import NOISE_KINDS

__all__ = ["FASHION_PAIRS", "corrupt_labels", "noise_pairs", "stratified_subset",
           "transition_matrix"]

FASHION_PAIRS: tuple[tuple[int, int], ...] = ((0, 6), (2, 4), (7, 9))
"""Fashion-MNIST classes flipped into each other: T-shirt/top (0) <-> Shirt (6), Pullover (2)
<-> Coat (4), Sneaker (7) <-> Ankle boot (9)."""

_PAIRS_BY_DATASET = {"fashion-mnist": FASHION_PAIRS}


def noise_pairs(dataset: str) -> tuple[tuple[int, int], ...]:
    """The asymmetric flip pairs of ``dataset``, or a ``ValueError`` naming those defined."""
    try:
        return _PAIRS_BY_DATASET[dataset]
    except KeyError:
        raise ValueError(
            f"asymmetric label noise has flip pairs for {', '.join(_PAIRS_BY_DATASET)} only, not "
            f"{dataset!r}; use --label-noise-kind symmetric") from None


def corrupt_labels(labels: Tensor, rate: float, kind: str = "symmetric", *, seed: int = 0,
                   num_classes: int | None = None,
                   pairs: tuple[tuple[int, int], ...] = FASHION_PAIRS) -> Tensor:
    """A noisy copy of ``labels`` (int64, ``(n,)``); see the module docstring for the rule.

    Args:
        labels: clean labels in ``{0, .., num_classes - 1}``.
        rate: the fraction of (eligible) labels to flip, in [0, 1).
        kind: ``symmetric`` or ``asymmetric``.
        seed: the flips' random seed.
        num_classes: C (default: ``labels.max() + 1``).
        pairs: the asymmetric flip pairs.
    """
    if kind not in NOISE_KINDS:
        raise ValueError(f"label noise kind must be one of {', '.join(NOISE_KINDS)}, got "
                         f"{kind!r}")
    if not 0.0 <= float(rate) < 1.0:
        raise ValueError(f"label noise rate must lie in [0, 1), got {rate!r}")
    labels = torch.as_tensor(labels, dtype=torch.long)
    classes = int(labels.max()) + 1 if num_classes is None else int(num_classes)
    if classes < 2:
        raise ValueError(f"label noise needs at least 2 classes, got {classes}")
    noisy = labels.clone()
    if rate == 0.0 or labels.numel() == 0:
        return noisy
    generator = torch.Generator().manual_seed(int(seed))
    if kind == "symmetric":
        n_flip = round(float(rate) * labels.numel())
        chosen = torch.randperm(labels.numel(), generator=generator)[:n_flip]
        # an offset in 1..C-1 added modulo C is a uniform draw from the other C - 1 classes
        offset = torch.randint(1, classes, (n_flip,), generator=generator)
        noisy[chosen] = (labels[chosen] + offset) % classes
        return noisy
    for a, b in pairs:
        for source, target in ((a, b), (b, a)):
            members = torch.nonzero(labels == source).flatten()
            n_flip = round(float(rate) * members.numel())
            chosen = members[torch.randperm(members.numel(), generator=generator)[:n_flip]]
            noisy[chosen] = target
    return noisy


def transition_matrix(clean: Tensor, noisy: Tensor, num_classes: int) -> Tensor:
    """The realised ``T[i, j] = P(noisy = j | clean = i)`` (rows of absent classes are 0)."""
    counts = torch.zeros(num_classes, num_classes, dtype=torch.float64)
    counts.index_put_((clean.long(), noisy.long()), torch.ones(clean.numel(), dtype=torch.float64),
                      accumulate=True)
    return counts / counts.sum(dim=1, keepdim=True).clamp_min(1.0)


def stratified_subset(labels: Tensor, size: int, seed: int) -> Tensor:
    """Sorted indices of a seeded, class-stratified subset of ``size`` of the ``labels``.

    Each class keeps ``round(size * n_c / n)`` samples (the rounding remainder goes to the
    largest classes), drawn without replacement.
    """
    labels = torch.as_tensor(labels, dtype=torch.long)
    n = labels.numel()
    if not 0 < size <= n:
        raise ValueError(f"subset size must lie in [1, {n}], got {size}")
    generator = torch.Generator().manual_seed(int(seed))
    classes, counts = torch.unique(labels, return_counts=True)
    quota = torch.floor(counts.double() * size / n).long()
    short = size - int(quota.sum())
    if short:
        order = torch.argsort(counts, descending=True, stable=True)
        quota[order[:short]] += 1
    chosen = []
    for c, k in zip(classes.tolist(), quota.tolist(), strict=True):
        members = torch.nonzero(labels == c).flatten()
        chosen.append(members[torch.randperm(members.numel(), generator=generator)[:k]])
    return torch.cat(chosen).sort().values
