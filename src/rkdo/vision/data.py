"""Datasets as in-memory uint8 tensors: :func:`load` and what it returns.

Every dataset is loaded once into two splits of ``(images, labels)`` (see
:mod:`rkdo.vision.splits`) and stays in memory (the largest, CIFAR-100 at 32 px, is 180 MB), so a
training step indexes a batch with one gather and augments it on the device
(:mod:`rkdo.vision.augment`) instead of decoding images one at a time in a ``DataLoader``.

Datasets (``name`` of :func:`load`):

- ``digits``: scikit-learn's bundled 8x8 digits (values 0..16 scaled to 0..255), a fixed
  stratified 80/20 train/test split (``random_state=0``). Always available.
- ``fashion-mnist``: the original IDX files (:mod:`rkdo.vision.idx`).
- ``cifar10``, ``cifar100``, ``stl10``: through ``torchvision.datasets``
  (:mod:`rkdo.vision.torchvision_sets`); STL-10 is resized 96 -> 64 px once at load time.
- ``imagefolder:PATH``: ``PATH/train/<class>`` with ``PATH/test/<class>`` (or ``PATH/val``), or
  one folder of class folders with a stratified hold-out split (:mod:`rkdo.vision.imagefolder`),
  resized (shorter side) and centre-cropped to 64 px once at load time, RGB.

Missing or broken data raises :class:`DataError` with one message that says where we looked and
the flag or command that gets the data.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rkdo.vision.catalogue import (
    DATASETS,
    IMAGEFOLDER_PREFIX,
    dataset_kind,
    default_image_size,
)
from rkdo.vision.idx import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_SYSTEM_ROOT,
    load_fashion_mnist,
    read_idx,
)
from rkdo.vision.imagefolder import DEFAULT_HOLDOUT_FRACTION, load_imagefolder
from rkdo.vision.splits import DataError, DatasetSplits, ImageData, as_image_data, default_root
from rkdo.vision.torchvision_sets import load_cifar, load_stl10, resize_uint8

__all__ = [
    "DATASETS",
    "DEFAULT_HOLDOUT_FRACTION",
    "DataError",
    "ImageData",
    "DatasetSplits",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_SYSTEM_ROOT",
    "load",
    "default_image_size",
    "default_root",
    "read_idx",
    "resize_uint8",
]


def load(
    name: str,
    root: str | os.PathLike | None = None,
    download: bool = False,
    *,
    holdout_fraction: float | None = None,
) -> DatasetSplits:
    """Load dataset ``name`` into memory.

    Args:
        name: one of :data:`DATASETS` or ``"imagefolder:PATH"``.
        root: where the files are (or go). Defaults: Fashion-MNIST looks in
            ``/usr/share/datasets/fashion-mnist`` then :func:`default_root`; CIFAR and STL-10 use
            :func:`default_root`. Ignored for ``digits`` and ``imagefolder:PATH``.
        download: let torchvision download CIFAR-10/100, STL-10 or Fashion-MNIST into ``root``
            when the files are not there.
        holdout_fraction: for ``imagefolder:PATH`` holding class folders directly, the share of
            each class held out as the test split, in (0, 1) (None:
            :data:`DEFAULT_HOLDOUT_FRACTION`). Any other dataset or layout has its own test split
            and refuses a value with ``ValueError``.

    Raises:
        DataError: files missing or unreadable.
    """
    kind = dataset_kind(name)
    if kind == IMAGEFOLDER_PREFIX:
        path = Path(name[len(IMAGEFOLDER_PREFIX) :]).expanduser()
        return load_imagefolder(name, path, holdout_fraction)
    if holdout_fraction is not None:
        raise ValueError(
            f"holdout_fraction applies to imagefolder:PATH with class folders directly in "
            f"PATH; {name} has a fixed test split, leave holdout_fraction unset"
        )
    loader: Callable[..., DatasetSplits] = _LOADERS[kind]
    return loader(None if root is None else Path(root).expanduser(), download)


def _load_digits(root: Path | None, download: bool) -> DatasetSplits:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    # 0..16 -> 0..255: 16 * 255 / 16 is exact, the rest round to the nearest level.
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    labels = digits.target.astype(np.int64)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=0.2, stratify=labels, random_state=0
    )
    return DatasetSplits(
        name="digits",
        train=as_image_data(images[train_idx], labels[train_idx]),
        test=as_image_data(images[test_idx], labels[test_idx]),
        classes=[str(c) for c in digits.target_names],
    )


_LOADERS: dict[str, Callable[..., DatasetSplits]] = {
    "digits": _load_digits,
    "fashion-mnist": load_fashion_mnist,
    "cifar10": lambda root, download: load_cifar(root, download, hundred=False),
    "cifar100": lambda root, download: load_cifar(root, download, hundred=True),
    "stl10": load_stl10,
}
