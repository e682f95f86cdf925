"""Datasets as in-memory uint8 tensors.

Every dataset is loaded once into two splits of ``(images, labels)``:

    images: uint8 (N, C, H, W),   labels: int64 (N,)   with   labels[n] in {0, .., num_classes - 1}

and stays in memory (the largest, CIFAR-100 at 32 px, is 180 MB), so a training step indexes a
batch with one gather and augments it on the device (:mod:`rkdo.vision.augment`) instead of decoding
images one at a time in a ``DataLoader``.

Datasets (``name`` of :func:`load`):

- ``digits``: scikit-learn's bundled 8x8 digits (values 0..16 scaled to 0..255), a fixed
  stratified 80/20 train/test split (``random_state=0``). Always available.
- ``fashion-mnist``: the original IDX files (gzip or raw), flat (Debian's
  ``dataset-fashion-mnist`` at ``/usr/share/datasets/fashion-mnist``) or in torchvision's
  ``ROOT/FashionMNIST/raw`` layout.
- ``cifar10``, ``cifar100``, ``stl10``: through ``torchvision.datasets``; STL-10 is resized
  96 -> 64 px once at load time, as in the paper.
- ``imagefolder:PATH``: ``PATH/train/<class>/*.png`` and ``PATH/test/<class>/*.png``, resized
  (shorter side) and centre-cropped to 64 px once at load time, RGB.

Missing or broken data raises :class:`DataError` with one message that says where we looked and
the flag or command that gets the data.
"""

from __future__ import annotations

import gzip
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DATASETS",
    "DataError",
    "ImageData",
    "DatasetSplits",
    "load",
    "default_image_size",
    "default_root",
]

DATASETS: tuple[str, ...] = ("digits", "fashion-mnist", "cifar10", "cifar100", "stl10")
"""Named datasets; ``"imagefolder:PATH"`` is accepted as well."""

IMAGEFOLDER_PREFIX = "imagefolder:"
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
_IMAGE_SIZES = {"digits": 8, "fashion-mnist": 28, "cifar10": 32, "cifar100": 32, "stl10": 64}
_IMAGEFOLDER_SIZE = 64
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataError(ValueError):
    """Data missing or broken; the message says where we looked and how to get the data."""


@dataclass
class ImageData:
    """One split, all in memory: ``images`` uint8 (N, C, H, W), ``labels`` int64 (N,)."""

    images: Tensor
    labels: Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                f"images must be a uint8 (N, C, H, W) tensor, got {self.images.dtype} "
                f"of shape {tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(
                f"labels must be an int64 (N,) tensor with N = {self.images.shape[0]}, got "
                f"{self.labels.dtype} of shape {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return self.images.shape[0]


@dataclass
class DatasetSplits:
    """A dataset's train and test splits and its class names."""

    name: str
    train: ImageData
    test: ImageData
    classes: list[str]

    @property
    def channels(self) -> int:
        return self.train.images.shape[1]

    @property
    def image_size(self) -> int:
        return self.train.images.shape[-1]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def default_root() -> Path:
    """Where downloaded datasets live: ``$RKDO_DATA_ROOT`` or ``~/.cache/rkdo/data``."""
    return Path(os.environ.get("RKDO_DATA_ROOT", "~/.cache/rkdo/data")).expanduser()


def _check_name(name: str) -> str:
    if name in DATASETS:
        return name
    if name.startswith(IMAGEFOLDER_PREFIX) and len(name) > len(IMAGEFOLDER_PREFIX):
        return IMAGEFOLDER_PREFIX
    raise ValueError(f"dataset must be one of {DATASETS} or 'imagefolder:PATH', got {name!r}")


def default_image_size(name: str) -> int:
    """Side length of the images :func:`load` returns for dataset ``name``."""
    kind = _check_name(name)
    return _IMAGEFOLDER_SIZE if kind == IMAGEFOLDER_PREFIX else _IMAGE_SIZES[kind]


def load(name: str, root: str | os.PathLike | None = None, download: bool = False) -> DatasetSplits:
    """Load dataset ``name`` into memory.

    Args:
        name: one of :data:`DATASETS` or ``"imagefolder:PATH"``.
        root: where the files are (or go). Defaults: Fashion-MNIST looks in
            ``/usr/share/datasets/fashion-mnist`` then :func:`default_root`; CIFAR and STL-10 use
            :func:`default_root`. Ignored for ``digits`` and ``imagefolder:PATH``.
        download: let torchvision download CIFAR-10/100, STL-10 or Fashion-MNIST into ``root``
            when the files are not there.

    Raises:
        DataError: files missing or unreadable.
    """
    kind = _check_name(name)
    if kind == IMAGEFOLDER_PREFIX:
        return _load_imagefolder(name, Path(name[len(IMAGEFOLDER_PREFIX) :]).expanduser())
    loader: Callable[..., DatasetSplits] = _LOADERS[kind]
    return loader(None if root is None else Path(root).expanduser(), download)


# ----------------------------------------------------------------------------- digits


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
        train=_split(images[train_idx], labels[train_idx]),
        test=_split(images[test_idx], labels[test_idx]),
        classes=[str(c) for c in digits.target_names],
    )


def _split(images: np.ndarray, labels: np.ndarray) -> ImageData:
    return ImageData(
        torch.from_numpy(np.ascontiguousarray(images)),
        torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)),
    )


# ----------------------------------------------------------------------------- Fashion-MNIST


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


def _load_fashion_mnist(root: Path | None, download: bool) -> DatasetSplits:
    stems = {
        "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }
    folders = _fashion_folders(root)
    all_stems = [s for pair in stems.values() for s in pair]
    if download and any(_find_idx(folders, s) is None for s in all_stems):
        target = default_root() if root is None else root
        _torchvision_download(
            "fashion-mnist",
            target,
            lambda: _torchvision_class("FashionMNIST")(target, download=True),
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
    splits = {}
    for split, (image_stem, label_stem) in stems.items():
        images = read_idx(paths[image_stem])
        labels = read_idx(paths[label_stem])
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(
                f"Fashion-MNIST {split} files disagree: images {images.shape} from "
                f"{paths[image_stem]}, labels {labels.shape} from {paths[label_stem]}"
            )
        splits[split] = _split(images[:, None].astype(np.uint8), labels.astype(np.int64))
    return DatasetSplits("fashion-mnist", splits["train"], splits["test"], FASHION_MNIST_CLASSES)


# ----------------------------------------------------------------------------- torchvision


def _torchvision_class(name: str):
    import torchvision.datasets

    return getattr(torchvision.datasets, name)


def _torchvision_download(dataset: str, root: Path, fetch: Callable[[], object]) -> None:
    try:
        fetch()
    except (OSError, RuntimeError) as err:  # URLError is an OSError
        raise DataError(
            f"downloading {dataset} into {root} failed ({type(err).__name__}: {err}). Check the "
            f"network, or put the files there yourself and pass --data-root {root}."
        ) from err


def _open_torchvision(dataset: str, cls, root: Path, download: bool, make: Callable[..., object]):
    """``make(download=...)`` builds the torchvision dataset; its errors become DataErrors."""
    if download:
        root.mkdir(parents=True, exist_ok=True)
        _torchvision_download(dataset, root, lambda: make(download=True))
    try:
        return make(download=False)
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted ..."
        raise DataError(
            f"{dataset} not found or corrupted (files missing or a checksum failed) in "
            f"{root / cls.base_folder}. Pass --download to fetch it into {root}, or --data-root "
            f"DIR for a folder that holds {cls.base_folder}/."
        ) from err
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, KeyError) as err:
        raise DataError(
            f"{dataset} files in {root / cls.base_folder} are unreadable "
            f"({type(err).__name__}: {err}); delete them and pass --download, or point "
            "--data-root at a good copy."
        ) from err


def _load_cifar(root: Path | None, download: bool, *, hundred: bool) -> DatasetSplits:
    name = "cifar100" if hundred else "cifar10"
    cls = _torchvision_class("CIFAR100" if hundred else "CIFAR10")
    root = default_root() if root is None else root
    splits = {}
    for split in ("train", "test"):
        ds = _open_torchvision(
            name,
            cls,
            root,
            download and split == "train",
            lambda s=split, **kw: cls(root, train=s == "train", **kw),
        )
        images = torch.from_numpy(np.asarray(ds.data, dtype=np.uint8)).permute(0, 3, 1, 2)
        splits[split] = ImageData(
            images.contiguous(), torch.as_tensor(ds.targets, dtype=torch.int64)
        )
    return DatasetSplits(name, splits["train"], splits["test"], list(ds.classes))


def _load_stl10(root: Path | None, download: bool) -> DatasetSplits:
    cls = _torchvision_class("STL10")
    root = default_root() if root is None else root
    splits = {}
    for split in ("train", "test"):
        ds = _open_torchvision(
            "stl10",
            cls,
            root,
            download and split == "train",
            lambda s=split, **kw: cls(root, split=s, **kw),
        )
        images = torch.from_numpy(np.ascontiguousarray(ds.data, dtype=np.uint8))
        splits[split] = ImageData(
            resize_uint8(images, _IMAGE_SIZES["stl10"]),
            torch.from_numpy(np.asarray(ds.labels, dtype=np.int64)),
        )
    classes = getattr(ds, "classes", None) or [str(c) for c in range(10)]
    return DatasetSplits("stl10", splits["train"], splits["test"], list(classes))


def resize_uint8(images: Tensor, size: int, chunk: int = 1024) -> Tensor:
    """Resize uint8 (N, C, H, W) images to ``size`` x ``size`` with antialiased bilinear filtering.

    Done once at load time, in chunks to bound memory; a no-op when the size already matches.
    """
    if images.shape[-2:] == (size, size):
        return images
    from torchvision.transforms.v2.functional import resize

    out = torch.empty((*images.shape[:2], size, size), dtype=torch.uint8)
    for start in range(0, images.shape[0], chunk):
        out[start : start + chunk] = resize(
            images[start : start + chunk], [size, size], antialias=True
        )
    return out


# ----------------------------------------------------------------------------- image folders


def _load_imagefolder(name: str, path: Path) -> DatasetSplits:
    from torchvision.datasets import ImageFolder
    from torchvision.transforms.v2 import functional as TF

    missing = [str(path / s) for s in ("train", "test") if not (path / s).is_dir()]
    if missing:
        raise DataError(
            f"imagefolder: {', '.join(missing)} missing. An image folder dataset needs "
            f"PATH/train/<class>/<image> and PATH/test/<class>/<image> (here PATH = {path})."
        )
    size = _IMAGEFOLDER_SIZE

    def square(image) -> Tensor:
        tensor = TF.pil_to_tensor(image.convert("RGB"))
        tensor = TF.resize(tensor, size, antialias=True)
        return TF.center_crop(tensor, [size, size])

    splits, classes = {}, None
    for split in ("train", "test"):
        try:
            ds = ImageFolder(str(path / split))
        except (FileNotFoundError, OSError) as err:
            raise DataError(f"imagefolder {path / split}: {err}") from err
        if classes is None:
            classes = ds.classes
        elif ds.classes != classes:
            raise DataError(
                f"imagefolder: class folders differ between {path / 'train'} ({classes}) and "
                f"{path / 'test'} ({ds.classes}); both splits need the same class folders."
            )
        try:
            images = torch.stack([square(ds.loader(p)) for p, _ in ds.samples])
        except OSError as err:
            raise DataError(f"imagefolder {path / split}: cannot decode an image: {err}") from err
        splits[split] = ImageData(images, torch.as_tensor(ds.targets, dtype=torch.int64))
    return DatasetSplits(name, splits["train"], splits["test"], list(classes))


_LOADERS: dict[str, Callable[..., DatasetSplits]] = {
    "digits": _load_digits,
    "fashion-mnist": _load_fashion_mnist,
    "cifar10": lambda root, download: _load_cifar(root, download, hundred=False),
    "cifar100": lambda root, download: _load_cifar(root, download, hundred=True),
    "stl10": _load_stl10,
}
