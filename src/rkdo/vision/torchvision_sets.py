"""CIFAR-10, CIFAR-100 and STL-10 through ``torchvision.datasets``, held as uint8 tensors.

torchvision reads the files (and downloads them when asked); its errors become
:class:`~rkdo.vision.splits.DataError` messages that name the folder and the flag that helps.
STL-10 is resized 96 -> 64 px once at load time, as in the paper.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rkdo.vision.catalogue import STL10_SIZE
from rkdo.vision.splits import DataError, DatasetSplits, ImageData, default_root

__all__ = ["STL10_SIZE", "load_cifar", "load_stl10", "resize_uint8", "torchvision_download"]


def torchvision_class(name: str):
    """The dataset class ``torchvision.datasets.<name>`` (imported on first use)."""
    import torchvision.datasets

    return getattr(torchvision.datasets, name)


def torchvision_download(dataset: str, root: Path, fetch: Callable[[], object]) -> None:
    """Run ``fetch()`` (a torchvision download); a network or disk failure is a DataError."""
    try:
        fetch()
    except (OSError, RuntimeError) as err:  # URLError is an OSError
        raise DataError(
            f"downloading {dataset} into {root} failed ({type(err).__name__}: {err}). Check the "
            f"network, or put the files there yourself and pass --data-root {root}."
        ) from err


def _open(dataset: str, cls, root: Path, download: bool, make: Callable[..., object]):
    """``make(download=...)`` builds the torchvision dataset; its errors become DataErrors."""
    if download:
        root.mkdir(parents=True, exist_ok=True)
        torchvision_download(dataset, root, lambda: make(download=True))
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


def load_cifar(root: Path | None, download: bool, *, hundred: bool) -> DatasetSplits:
    """CIFAR-10 (or CIFAR-100 with ``hundred``) from ``root`` (default :func:`default_root`)."""
    name = "cifar100" if hundred else "cifar10"
    cls = torchvision_class("CIFAR100" if hundred else "CIFAR10")
    root = default_root() if root is None else root
    splits = {}
    for split in ("train", "test"):
        ds = _open(
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


def load_stl10(root: Path | None, download: bool) -> DatasetSplits:
    """STL-10's labelled train and test splits, resized to :data:`STL10_SIZE`."""
    cls = torchvision_class("STL10")
    root = default_root() if root is None else root
    splits = {}
    for split in ("train", "test"):
        ds = _open(
            "stl10",
            cls,
            root,
            download and split == "train",
            lambda s=split, **kw: cls(root, split=s, **kw),
        )
        images = torch.from_numpy(np.ascontiguousarray(ds.data, dtype=np.uint8))
        splits[split] = ImageData(
            resize_uint8(images, STL10_SIZE),
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
