"""What every dataset loader returns, the error it raises, and where downloads live.

A dataset is two in-memory splits of ``(images, labels)``,

    images: uint8 (N, C, H, W),   labels: int64 (N,)   with   labels[n] in {0, .., num_classes - 1}

plus its class names. Missing or broken data is a :class:`DataError` whose one message says
where we looked and the flag or command that gets the data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["DataError", "ImageData", "DatasetSplits", "as_image_data", "default_root"]


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


def as_image_data(images: np.ndarray, labels: np.ndarray) -> ImageData:
    """An :class:`ImageData` over contiguous copies of numpy ``images`` and ``labels``."""
    return ImageData(
        torch.from_numpy(np.ascontiguousarray(images)),
        torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)),
    )


def default_root() -> Path:
    """Where downloaded datasets live: ``$RKDO_DATA_ROOT`` or ``~/.cache/rkdo/data``."""
    return Path(os.environ.get("RKDO_DATA_ROOT", "~/.cache/rkdo/data")).expanduser()
