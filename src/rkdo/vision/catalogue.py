"""What the vision layer offers, by name and without torch: the datasets and the side of the
images each gives, the encoders, the kinds of label noise.

The run config (:mod:`rkdo.training.config`) declares its choices from these, so that
``rkdo train --help`` loads no torch; :mod:`.data`, :mod:`.models` and :mod:`.noise`, which
load, build and corrupt, import them from here.
"""

from __future__ import annotations

__all__ = ["DATASETS", "DISPLAY_NAMES", "IMAGEFOLDER_PREFIX", "IMAGEFOLDER_SIZE", "STL10_SIZE",
           "ENCODERS", "NOISE_KINDS", "dataset_kind", "default_image_size"]

DATASETS: tuple[str, ...] = ("digits", "fashion-mnist", "cifar10", "cifar100", "stl10")
"""Named datasets; ``"imagefolder:PATH"`` is accepted as well."""
DISPLAY_NAMES = {"digits": "Digits", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10",
                 "cifar100": "CIFAR-100", "stl10": "STL-10"}
"""Each named dataset as figures and tables print it."""
IMAGEFOLDER_PREFIX = "imagefolder:"
STL10_SIZE = 64
"""STL-10's 96 px images are resized to this side once, at load time (as in the paper)."""
IMAGEFOLDER_SIZE = 64
"""Image folders are decoded into RGB squares of this side."""
_IMAGE_SIZES = {"digits": 8, "fashion-mnist": 28, "cifar10": 32, "cifar100": 32,
                "stl10": STL10_SIZE}

ENCODERS: tuple[str, ...] = ("resnet18", "resnet18-cifar", "small-cnn")
"""The encoders :func:`rkdo.vision.models.build_model` makes."""
NOISE_KINDS = ("symmetric", "asymmetric")
"""The label noise :func:`rkdo.vision.noise.corrupt_labels` draws."""


def dataset_kind(name: str) -> str:
    """``name`` itself for a named dataset, :data:`IMAGEFOLDER_PREFIX` for
    ``imagefolder:PATH``; anything else is refused in one line."""
    if name in DATASETS:
        return name
    if name.startswith(IMAGEFOLDER_PREFIX) and len(name) > len(IMAGEFOLDER_PREFIX):
        return IMAGEFOLDER_PREFIX
    raise ValueError(f"dataset must be one of {DATASETS} or 'imagefolder:PATH', got {name!r}")


def default_image_size(name: str) -> int:
    """Side length of the images :func:`rkdo.vision.data.load` returns for dataset ``name``."""
    kind = dataset_kind(name)
    return IMAGEFOLDER_SIZE if kind == IMAGEFOLDER_PREFIX else _IMAGE_SIZES[kind]
