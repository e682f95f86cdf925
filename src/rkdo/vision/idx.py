"""The IDX format (MNIST's) and Fashion-MNIST, read from its original IDX files.

The files may be gzip-compressed or raw, flat in one folder (Debian's ``dataset-fashion-mnist``
at ``/usr/share/datasets/fashion-mnist``) or in torchvision's ``ROOT/FashionMNIST/raw`` layout.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from rkdo.vision.splits import DataError, DatasetSplits, as_image_data, default_root
from rkdo.vision.torchvision_sets import torchvision_class, torchvision_download

__all__ = ["FASHION_MNIST_CLASSES", "FASHION_MNIST_SYSTEM_ROOT", "load_fashion_mnist", "read_idx"]

FASHION_MNIST_SYSTEM_ROOT = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed if its name ends in ``.gz``).

    Format: two zero bytes, a type byte (0x08 = uint8, ...), a byte ``d`` with the number of
    dimensions, ``d`` big-endian int32 sizes, then the values in C order, big-endian.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read IDX file {path}: {err}") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number {raw[:4]!r})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(s) for s in np.frombuffer(raw[4:header], dtype=">i4"))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(
            f"{path} is truncated or padded: header says shape {shape}, {expected} bytes, "
            f"the file has {len(raw)}"
        )
    return (
        np.frombuffer(raw, dtype=dtype, offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def _find_idx(folders: list[Path], stem: str) -> Path | None:
    for folder in folders:
        for candidate in (folder / f"{stem}.gz", folder / stem):
            if candidate.is_file():
                return candidate
    return None


def _fashion_folders(root: Path | None) -> list[Path]:
    roots = [Path(FASHION_MNIST_SYSTEM_ROOT), default_root()] if root is None else [root]
    return [folder for r in roots for folder in (r, r / "FashionMNIST" / "raw")]


def _find_fashion_files(root: Path | None, download: bool) -> dict[str, Path]:
    """The four IDX files, downloaded first when asked and missing; DataError if absent."""
    folders = _fashion_folders(root)
    all_stems = [s for pair in _STEMS.values() for s in pair]
    if download and any(_find_idx(folders, s) is None for s in all_stems):
        target = default_root() if root is None else root
        torchvision_download(
            "fashion-mnist",
            target,
            lambda: torchvision_class("FashionMNIST")(target, download=True),
        )
        folders = _fashion_folders(root)
    paths = {s: _find_idx(folders, s) for s in all_stems}
    missing = [s for s, p in paths.items() if p is None]
    if missing:
        tried = ", ".join(str(f) for f in folders)
        raise DataError(
            f"Fashion-MNIST files {missing} (.gz or raw IDX) not found; looked in: {tried}. "
            "Get them with: apt-get install dataset-fashion-mnist, or pass --data-root DIR "
            "(a folder with the IDX files), or --download."
        )
    return paths  # type: ignore[return-value]


def load_fashion_mnist(root: Path | None, download: bool) -> DatasetSplits:
    """Fashion-MNIST's 60,000 / 10,000 split from ``root`` (default: the system folder, then
    :func:`~rkdo.vision.splits.default_root`)."""
    paths = _find_fashion_files(root, download)
    splits = {}
    for split, (image_stem, label_stem) in _STEMS.items():
        images = read_idx(paths[image_stem])
        labels = read_idx(paths[label_stem])
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(
                f"Fashion-MNIST {split} files disagree: images {images.shape} from "
                f"{paths[image_stem]}, labels {labels.shape} from {paths[label_stem]}"
            )
        splits[split] = as_image_data(images[:, None].astype(np.uint8), labels.astype(np.int64))
    return DatasetSplits("fashion-mnist", splits["train"], splits["test"], FASHION_MNIST_CLASSES)
