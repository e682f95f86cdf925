"""Encoders and projection heads."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models import resnet18

from rkdo.vision.models import ENCODERS, EmbeddingModel, ProjectionHead, build_model, min_image_size


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    "encoder, channels, size, feature_dim",
    [
        ("resnet18", 3, 32, 512),
        ("resnet18", 1, 28, 512),
        ("resnet18-cifar", 3, 16, 512),
        ("small-cnn", 1, 8, 128),
        ("small-cnn", 1, 28, 128),
        ("small-cnn", 3, 32, 128),
    ],
)
def test_shapes_norms_and_features(encoder, channels, size, feature_dim):
    torch.manual_seed(0)
    model = build_model(encoder, channels, size, embedding_dim=24, hidden_dim=40)
    assert isinstance(model, EmbeddingModel) and model.feature_dim == feature_dim
    x = torch.randn(6, channels, size, size)
    z = model(x)
    assert z.shape == (6, 24)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(6))
    features = model.features(x)
    assert features.shape == (6, feature_dim)
    # forward is the head on the features, normalised.
    model.eval()
    head = model.head(model.features(x))
    torch.testing.assert_close(model(x), head / head.norm(dim=1, keepdim=True))


def test_resnet18_is_torchvision_without_fc():
    model = build_model("resnet18", 3, 32)
    reference = resnet18(weights=None)
    assert n_params(model.backbone) == n_params(reference) - n_params(reference.fc)
    assert n_params(model.backbone) == 11_176_512
    assert isinstance(model.backbone.fc, nn.Identity)
    conv1 = model.backbone.conv1
    assert (conv1.kernel_size, conv1.stride, conv1.in_channels) == ((7, 7), (2, 2), 3)
    assert isinstance(model.backbone.maxpool, nn.MaxPool2d)
    # Same modules in the same order: the state dict loads into torchvision's model (minus fc).
    reference.fc = nn.Identity()
    reference.load_state_dict(model.backbone.state_dict())
    one_channel = build_model("resnet18", 1, 32).backbone.conv1
    assert one_channel.weight.shape == (64, 1, 7, 7)


def test_resnet18_cifar_stem_keeps_resolution():
    backbone = build_model("resnet18-cifar", 3, 32).backbone
    assert backbone.conv1.kernel_size == (3, 3) and backbone.conv1.stride == (1, 1)
    assert isinstance(backbone.maxpool, nn.Identity)
    sizes = {}

    def record(name):
        def hook(module, inputs, output):
            sizes[name] = output.shape[-1]

        return hook

    backbone.layer1.register_forward_hook(record("layer1"))
    backbone.layer4.register_forward_hook(record("layer4"))
    backbone(torch.randn(2, 3, 32, 32))
    assert sizes == {"layer1": 32, "layer4": 4}  # ImageNet stem: 8 and 1


def test_projection_head_layers():
    head = ProjectionHead(512, 512, 64)
    kinds = [type(m) for m in head.layers]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert (head.layers[0].in_features, head.layers[0].out_features) == (512, 512)
    assert (head.layers[3].in_features, head.layers[3].out_features) == (512, 64)


@pytest.mark.parametrize("encoder, channels, size", [("resnet18", 3, 32), ("small-cnn", 1, 28)])
def test_channels_last_gives_the_same_model(encoder, channels, size):
    torch.manual_seed(1)
    model = build_model(encoder, channels, size).eval()
    x = torch.randn(4, channels, size, size)
    expected = model(x)
    fast = model.to(memory_format=torch.channels_last)
    torch.testing.assert_close(
        fast(x.to(memory_format=torch.channels_last)), expected, atol=1e-5, rtol=1e-4
    )
    # And it trains: every parameter gets a gradient.
    fast.train()
    fast(x.to(memory_format=torch.channels_last)).sum().backward()
    assert all(p.grad is not None for p in fast.parameters())


def test_small_cnn_is_small():
    model = build_model("small-cnn", 1, 28)
    assert n_params(model.backbone) < 50_000
    assert n_params(model.backbone) < n_params(build_model("resnet18", 1, 28).backbone) / 100


def test_bad_arguments():
    with pytest.raises(ValueError, match="resnet18-cifar") as info:
        build_model("vit", 3, 32)
    assert all(name in str(info.value) for name in ENCODERS)
    with pytest.raises(ValueError, match="too small.*small-cnn"):
        build_model("resnet18", 1, 8)
    with pytest.raises(ValueError, match="in_channels"):
        build_model("small-cnn", 0, 28)
    with pytest.raises(ValueError, match="embedding_dim"):
        build_model("small-cnn", 1, 28, embedding_dim=0)
    assert [min_image_size(e) for e in ENCODERS] == [16, 8, 4]
    build_model("small-cnn", 1, 4)(torch.randn(2, 1, 4, 4))  # the smallest size works
    build_model("resnet18", 1, 16)(torch.randn(2, 1, 16, 16))


@pytest.mark.parametrize("width", [8, 16, 32])
def test_small_cnn_width_scales_channels_and_features(width):
    model = build_model("small-cnn", 1, 28, width=width)
    convs = [m for m in model.backbone if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [width, 2 * width, 4 * width, 8 * width]
    assert model.feature_dim == 8 * width
    # parameters of the convolutions, counted by hand: 3x3 kernels, then the 1x1 one
    expected = 9 * (width + width * 2 * width + 2 * width * 4 * width) + 4 * width * 8 * width
    assert sum(c.weight.numel() for c in convs) == expected
    assert model.features(torch.randn(2, 1, 28, 28)).shape == (2, 8 * width)


def test_raw_pixels_are_the_flattened_images_without_parameters():
    from rkdo.vision.models import RawPixels

    x = torch.rand(5, 3, 4, 4) * 2 - 1
    model = RawPixels()
    assert list(model.parameters()) == []
    assert torch.equal(model.features(x), x.reshape(5, 48))
    z = model(x)
    assert torch.allclose(z.norm(dim=1), torch.ones(5))
    assert torch.allclose(z * x.reshape(5, 48).norm(dim=1, keepdim=True), x.reshape(5, 48))
