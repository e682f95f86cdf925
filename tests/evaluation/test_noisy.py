"""The label-noise protocol: clean probe on clean labels, k-NN on the noisy ones, head accuracy."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rkdo.evaluation.noisy import evaluate_noisy
from rkdo.vision.splits import DatasetSplits, ImageData


class _Pixels(nn.Module):
    """Features = the flattened pixels (as float); the projection the same, normalised."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(x.flatten(1), dim=1)


def _split(n_per_class: int, seed: int) -> ImageData:
    """Two classes that the pixels separate perfectly: a bright or a dark left half."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(2).repeat_interleave(n_per_class)
    images = torch.randint(0, 60, (labels.numel(), 1, 4, 4), generator=g, dtype=torch.uint8)
    images[labels == 1, :, :, :2] += 180
    return ImageData(images, labels)


def test_knn_reads_the_noisy_labels_and_the_probe_the_clean_ones() -> None:
    train, test = _split(50, 0), _split(50, 1)
    clean = train.labels.clone()
    swapped = ImageData(train.images, 1 - clean)  # every training label wrong
    data = DatasetSplits("toy", swapped, test, ["a", "b"])
    head = nn.Linear(16, 2)
    with torch.no_grad():  # predicts class 1 for everything
        head.weight.zero_()
        head.bias.copy_(torch.tensor([0.0, 1.0]))
    result = evaluate_noisy(_Pixels(), data, clean, probe_size=20, classify=head)
    assert result["clean_probe"] == 1.0
    assert result["knn_noisy_20"] == 0.0
    assert result["label_noise_share"] == 1.0
    assert result["head_acc"] == 0.5
    assert "head_acc" not in evaluate_noisy(_Pixels(), data, clean, probe_size=20)


def test_clean_labels_must_match_the_training_split() -> None:
    train, test = _split(5, 0), _split(5, 1)
    with pytest.raises(ValueError, match="clean_train_labels has shape"):
        evaluate_noisy(_Pixels(), DatasetSplits("toy", train, test, ["a", "b"]),
                       train.labels[:3])
