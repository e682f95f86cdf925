"""Image folders on disk, decoded once into RGB squares of :data:`IMAGEFOLDER_SIZE` px.

Two layouts (``PATH`` is what follows ``imagefolder:``):

- split: ``PATH/train/<class>/<image>`` with ``PATH/test/<class>/<image>``, or with
  ``PATH/val/<class>/<image>`` when there is no ``test/``; both splits need the same classes.
- torchvision's ``ImageFolder``: ``PATH/<class>/<image>``. A stratified ``holdout_fraction``
  of each class (default :data:`DEFAULT_HOLDOUT_FRACTION`) becomes the test split, drawn with
  the fixed seed :data:`HOLDOUT_SEED`, so every run, resume and evaluation sees the same split.

Each image is resized (shorter side) and centre-cropped once at load time. A file that cannot
be decoded is a :class:`~rkdo.vision.splits.DataError` naming that file. Symbolic links are
followed, but each real folder is walked once and each real image file read once (the first
path to it in sorted order), so a link loop or a second link to the same image can neither
repeat images nor put one image in both splits.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rkdo._validation import check_unit_interval
from rkdo.vision.catalogue import IMAGEFOLDER_SIZE
from rkdo.vision.splits import DataError, DatasetSplits, ImageData

__all__ = [
    "DEFAULT_HOLDOUT_FRACTION",
    "HELD_OUT_NAMES",
    "HOLDOUT_SEED",
    "IMAGEFOLDER_SIZE",
    "load_imagefolder",
    "stratified_holdout",
]

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
    try:
        walk = _Walk(path, [path / "train", held_out])
    except OSError as err:
        raise DataError(f"imagefolder {path}: {err}. {_LAYOUTS}.") from err
    train, train_classes = _read(path / "train", walk)
    test, test_classes = _read(held_out, walk)
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


class _Walk:
    """What a dataset's walk has used: real image files read, and real folders that are not a
    class folder's contents (the dataset, its splits, every class folder), never entered
    through a link: a link to one of them is a loop or a jump into another class."""

    def __init__(self, top: Path, splits: list[Path]) -> None:
        self.files: set[str] = set()
        self.fixed = {os.path.realpath(top)} | {os.path.realpath(s) for s in splits}
        for split in splits:
            with os.scandir(split) as entries:
                self.fixed |= {os.path.realpath(e.path) for e in entries if e.is_dir()}

    def images(self, class_folder: Path) -> list[Path]:
        """Image files under ``class_folder``, sorted, following links, each real folder
        visited once and each real file kept once."""
        from torchvision.datasets.folder import IMG_EXTENSIONS

        found, visited = [], set()
        for root, folders, names in os.walk(class_folder, followlinks=True):
            visited.add(os.path.realpath(root))
            folders[:] = sorted(f for f in folders if self._enter(Path(root) / f, visited))
            for name in sorted(names):
                target = os.path.realpath(Path(root) / name)
                if (name.lower().endswith(IMG_EXTENSIONS) and os.path.isfile(target)
                        and target not in self.files):
                    self.files.add(target)
                    found.append(Path(root) / name)
        return found

    def _enter(self, folder: Path, visited: set[str]) -> bool:
        real = os.path.realpath(folder)
        return real not in visited and real not in self.fixed and not any(
            fixed.startswith(real + os.sep) for fixed in self.fixed)


def _read(folder: Path, walk: _Walk | None = None) -> tuple[ImageData, list[str]]:
    """Every image under ``folder/<class>/`` decoded, with the sorted class names (``walk``:
    shared by the splits of one dataset)."""
    try:
        walk = _Walk(folder, [folder]) if walk is None else walk
        classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
    except OSError as err:
        raise DataError(f"imagefolder {folder}: {err}. {_LAYOUTS}.") from err
    if not classes:
        raise DataError(f"imagefolder {folder}: no class folders in it. {_LAYOUTS}.")
    files, labels = [], []
    for label, name in enumerate(classes):
        members = walk.images(folder / name)
        if not members:
            raise DataError(f"imagefolder {folder}: no image files in the class folder "
                            f"{folder / name}; add images or remove that folder")
        files += members
        labels += [label] * len(members)
    images = torch.stack([_decode(file) for file in files])
    return ImageData(images, torch.as_tensor(labels, dtype=torch.int64)), classes


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
