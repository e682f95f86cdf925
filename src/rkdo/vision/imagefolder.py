"""Image folders on disk, decoded once into RGB squares of :data:`IMAGEFOLDER_SIZE` px.

Two layouts (``PATH`` is what follows ``imagefolder:``):

- split: ``PATH/train/<class>/<image>`` with ``PATH/test/<class>/<image>``, or with
  ``PATH/val/<class>/<image>`` when there is no ``test/``; both splits need the same classes.
- torchvision's ``ImageFolder``: ``PATH/<class>/<image>``. A stratified ``holdout_fraction``
  of each class (default :data:`DEFAULT_HOLDOUT_FRACTION`) becomes the test split, drawn with
  the fixed seed :data:`HOLDOUT_SEED`, so every run, resume and evaluation sees the same split.

Each image is resized (shorter side) and centre-cropped once at load time. A file that cannot
be decoded is a :class:`~rkdo.vision.splits.DataError` naming that file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rkdo._validation import check_unit_interval
from rkdo.vision.splits import DataError, DatasetSplits, ImageData

__all__ = [
    "DEFAULT_HOLDOUT_FRACTION",
    "HELD_OUT_NAMES",
    "HOLDOUT_SEED",
    "IMAGEFOLDER_SIZE",
    "load_imagefolder",
    "stratified_holdout",
]

IMAGEFOLDER_SIZE = 64
DEFAULT_HOLDOUT_FRACTION = 0.2
HOLDOUT_SEED = 0
HELD_OUT_NAMES = ("test", "val")
_LAYOUTS = (
    "An image folder dataset is PATH/train/<class>/<image> with PATH/test/<class>/<image> "
    "(or PATH/val/...), or PATH/<class>/<image> for a held-out split"
)


def load_imagefolder(
    name: str, path: Path, holdout_fraction: float | None = None
) -> DatasetSplits:
    """The dataset in image folder ``path`` (see the module docstring for the layouts).

    ``holdout_fraction`` applies to the ``PATH/<class>`` layout only; giving it for a folder
    that already has its splits is a ``ValueError`` rather than a setting silently ignored.
    """
    held_out = _split_folders(path)
    if held_out is None:
        fraction = DEFAULT_HOLDOUT_FRACTION if holdout_fraction is None else check_unit_interval(
            "holdout_fraction", holdout_fraction, low_open=True, high_open=True
        )
        return _load_with_holdout(name, path, fraction)
    if holdout_fraction is not None:
        raise ValueError(
            f"holdout_fraction applies to a single folder of class folders, but {path} already "
            f"has train/ and {held_out.name}/; leave holdout_fraction unset"
        )
    train, train_classes = _read(path / "train")
    test, test_classes = _read(held_out)
    if test_classes != train_classes:
        raise DataError(
            f"imagefolder: class folders differ between {path / 'train'} ({train_classes}) and "
            f"{held_out} ({test_classes}); both splits need the same class folders."
        )
    return DatasetSplits(name, train, test, train_classes)


def _split_folders(path: Path) -> Path | None:
    """The held-out folder of a split layout, or None for a folder of class folders."""
    if not path.is_dir():
        raise DataError(f"imagefolder: {path} is not a folder. {_LAYOUTS}.")
    held_out = next((path / n for n in HELD_OUT_NAMES if (path / n).is_dir()), None)
    if (path / "train").is_dir():
        if held_out is None:
            raise DataError(
                f"imagefolder: {path / 'train'} has no held-out split beside it: add "
                f"{path / 'test'} (or {path / 'val'}) with the same class folders, or put the "
                f"class folders directly in {path} to hold out a fraction of them."
            )
        return held_out
    if held_out is not None:
        raise DataError(
            f"imagefolder: {held_out} is there but {path / 'train'} is missing. {_LAYOUTS}."
        )
    return None


def _load_with_holdout(name: str, path: Path, fraction: float) -> DatasetSplits:
    everything, classes = _read(path)
    train, test = stratified_holdout(everything.labels.numpy(), fraction, HOLDOUT_SEED)
    if len(test) == 0:
        raise DataError(
            f"imagefolder: {path} has {len(everything)} images in {len(classes)} classes, too "
            "few to hold any out (a class needs 2 images to give one to the test split); add "
            "images, or give PATH/train and PATH/test yourself."
        )
    pick = lambda rows: ImageData(  # noqa: E731
        everything.images[torch.from_numpy(rows)], everything.labels[torch.from_numpy(rows)]
    )
    return DatasetSplits(name, pick(train), pick(test), classes)


def stratified_holdout(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ``(train, test)`` row indices, ``fraction * n_c`` (rounded half up) of each class
    ``c`` held out at random (``seed``): at least one and at most ``n_c - 1`` when ``n_c >= 2``,
    none of a class with a single image."""
    rng = np.random.default_rng(seed)
    held = [np.zeros(0, dtype=np.int64)]
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = members.shape[0]
        take = min(max(int(np.floor(fraction * count + 0.5)), 1), count - 1)
        held.append(rng.permutation(members)[:take])
    test = np.sort(np.concatenate(held))
    return np.setdiff1d(np.arange(labels.shape[0]), test), test


def _read(folder: Path) -> tuple[ImageData, list[str]]:
    """Every image under ``folder/<class>/`` decoded, with the sorted class names."""
    from torchvision.datasets import ImageFolder

    try:
        listing = ImageFolder(str(folder))
    except (FileNotFoundError, OSError) as err:
        raise DataError(f"imagefolder {folder}: {err}. {_LAYOUTS}.") from err
    images = torch.stack([_decode(Path(file)) for file, _ in listing.samples])
    return ImageData(images, torch.as_tensor(listing.targets, dtype=torch.int64)), listing.classes


def _decode(file: Path) -> Tensor:
    """One image as a uint8 (3, size, size) tensor: RGB, shorter side resized, centre crop."""
    from PIL import Image
    from torchvision.transforms.v2 import functional as TF

    size = IMAGEFOLDER_SIZE
    try:
        with Image.open(file) as image:
            tensor = TF.pil_to_tensor(image.convert("RGB"))
    # PIL reports broken files as OSError (truncated, unidentified), SyntaxError (a bad PNG
    # chunk), ValueError, or DecompressionBombError (an Exception of its own)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(
            f"imagefolder: cannot decode {file} ({type(err).__name__}: {err}); delete or "
            "replace that file"
        ) from err
    tensor = TF.resize(tensor, size, antialias=True)
    return TF.center_crop(tensor, [size, size])
