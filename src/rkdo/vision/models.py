"""Encoders and projection heads.

An embedding model is a backbone ``f`` followed by a projection head ``g`` and L2 normalisation:

    z = g(f(x)) / ||g(f(x))||,     g = Linear -> BatchNorm -> ReLU -> Linear

so that ``z_i . z_j`` is the cosine similarity the learned kernels of :mod:`rkdo.kernels` use.
Evaluation (probes, k-NN) reads the backbone features ``f(x)``, as is usual in contrastive
learning.

Encoders (:data:`ENCODERS`):

- ``resnet18``: torchvision's ResNet-18 with the ImageNet stem (7x7 stride-2 convolution and
  max-pool), no pretraining, ``fc`` removed; the reference notebooks' encoder. 512 features.
- ``resnet18-cifar``: the same with a 3x3 stride-1 first convolution and no max-pool, the usual
  choice for 32 px images. 512 features.
- ``small-cnn``: three convolution blocks (16, 32, 64 channels, BatchNorm, ReLU, 2x2 max-pool
  after the first two) and a 1x1 convolution to 128 channels, average-pooled, for 8 px digits
  and 28 px Fashion-MNIST on a CPU: 2.3 million multiply-adds per 28 px image (ResNet-18 with
  the ImageNet stem: 37 million at 32 px; with the CIFAR stem: 555 million), 32 thousand
  parameters. 128 features. ``width`` scales it: ``w, 2w, 4w`` channels and ``8w`` features
  (the default ``w = 16`` is the network above; ``w = 32`` has about 4x the multiply-adds).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from rkdo._validation import check_int
from rkdo.vision.catalogue import ENCODERS

__all__ = [
    "ENCODERS",
    "ProjectionHead",
    "EmbeddingModel",
    "RawPixels",
    "SmallCNN",
    "build_model",
    "min_image_size",
]

# The smallest input side for which every stage still sees at least one pixel without the
# stride-2 stages collapsing a 1x1 map again (ImageNet stem: /32, CIFAR stem: /8, small CNN: /4).
_MIN_IMAGE_SIZE = {"resnet18": 16, "resnet18-cifar": 8, "small-cnn": 4}


def min_image_size(encoder: str) -> int:
    """The smallest image side ``encoder`` accepts."""
    _check_encoder(encoder)
    return _MIN_IMAGE_SIZE[encoder]


def _check_encoder(encoder: str) -> None:
    if encoder not in ENCODERS:
        raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")


class ProjectionHead(nn.Module):
    """``Linear(feature_dim, hidden) -> BatchNorm1d -> ReLU -> Linear(hidden, embedding_dim)``."""

    def __init__(self, feature_dim: int, hidden_dim: int = 512, embedding_dim: int = 64) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(feature_dim, hidden_dim, bias=False),  # BatchNorm supplies the bias
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, embedding_dim),
        )

    def forward(self, features: Tensor) -> Tensor:
        return self.layers(features)


class EmbeddingModel(nn.Module):
    """Backbone, projection head and L2 normalisation.

    Attributes:
        backbone: images (B, C, H, W) -> features (B, feature_dim).
        head: the :class:`ProjectionHead`.
        feature_dim: width of the backbone features.
    """

    def __init__(self, backbone: nn.Module, head: ProjectionHead, feature_dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.feature_dim = int(feature_dim)

    def features(self, x: Tensor) -> Tensor:
        """Backbone features (B, feature_dim), the representation evaluation uses."""
        return self.backbone(x)

    def forward(self, x: Tensor) -> Tensor:
        """Unit-norm embeddings (B, embedding_dim)."""
        return F.normalize(self.head(self.backbone(x)), dim=1)


def _conv_block(in_channels: int, out_channels: int, kernel_size: int = 3) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class SmallCNN(nn.Sequential):
    """Conv(w) -> pool -> Conv(2w) -> pool -> Conv(4w) -> Conv1x1(8w) -> global average pool.

    Attributes:
        feature_dim: ``8 w`` (128 at the default width 16).
    """

    def __init__(self, in_channels: int, width: int = 16) -> None:
        width = check_int("width", width, low=1)
        self.feature_dim = 8 * width
        super().__init__(
            *_conv_block(in_channels, width),
            nn.MaxPool2d(2),
            *_conv_block(width, 2 * width),
            nn.MaxPool2d(2),
            *_conv_block(2 * width, 4 * width),
            *_conv_block(4 * width, self.feature_dim, kernel_size=1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )


class RawPixels(nn.Module):
    """The identity encoder, the raw-pixel floor of a benchmark: no parameters, nothing learned.

        x_i = vec(image_i)  (features),      z_i = x_i / ||x_i||  (embedding)

    Evaluated like a trained encoder, it answers "what do the pixels alone give?" under the
    same protocol (linear probe, k-NN, k-means on the flattened ``[-1, 1]`` images).
    """

    def features(self, x: Tensor) -> Tensor:
        return x.flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(x.flatten(1), dim=1)


def _resnet18(in_channels: int, cifar_stem: bool) -> nn.Module:
    from torchvision.models import resnet18

    net = resnet18(weights=None)
    if cifar_stem:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    net.fc = nn.Identity()
    return net


def build_model(
    encoder: str,
    in_channels: int,
    image_size: int,
    embedding_dim: int = 64,
    hidden_dim: int = 512,
    width: int = 16,
) -> EmbeddingModel:
    """An :class:`EmbeddingModel` with the named encoder (randomly initialised).

    Args:
        encoder: one of :data:`ENCODERS`.
        in_channels: image channels (1 or 3, any positive number works).
        image_size: side of the (square) input images; must be at least
            :func:`min_image_size` of the encoder.
        embedding_dim: output width of the projection head (64 in the reference).
        hidden_dim: hidden width of the projection head (512 in the reference).
        width: ``small-cnn``'s first-block channels (see :class:`SmallCNN`); ignored otherwise.
    """
    _check_encoder(encoder)
    in_channels = check_int("in_channels", in_channels, low=1)
    image_size = check_int("image_size", image_size, low=1)
    embedding_dim = check_int("embedding_dim", embedding_dim, low=1)
    hidden_dim = check_int("hidden_dim", hidden_dim, low=1)
    if image_size < _MIN_IMAGE_SIZE[encoder]:
        fits = [e for e in ENCODERS if _MIN_IMAGE_SIZE[e] <= image_size]
        raise ValueError(
            f"image_size {image_size} is too small for encoder {encoder!r} (needs >= "
            f"{_MIN_IMAGE_SIZE[encoder]}); encoders that fit: {fits}"
        )
    if encoder == "small-cnn":
        backbone: nn.Module = SmallCNN(in_channels, width)
        feature_dim = backbone.feature_dim
    else:
        backbone = _resnet18(in_channels, cifar_stem=encoder == "resnet18-cifar")
        feature_dim = 512
    return EmbeddingModel(
        backbone, ProjectionHead(feature_dim, hidden_dim, embedding_dim), feature_dim
    )
