"""Batched two-view augmentation against torchvision's per-image transforms."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from torchvision.transforms import RandomResizedCrop
from torchvision.transforms.v2 import functional as TF

from rkdo.vision.augment import AugmentParams, TwoViews, to_float

COLOR_OPS = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]


def torchvision_view(image: torch.Tensor, params: AugmentParams, b: int, size: int) -> torch.Tensor:
    """The reference recipe for sample ``b``, one torchvision call at a time, on [0, 1] floats."""
    x = image.float() / 255
    box = [int(v[b]) for v in (params.top, params.left, params.height, params.width)]
    x = TF.resized_crop(x, *box, [size, size], antialias=True)
    if params.flip[b]:
        x = TF.horizontal_flip(x)
    if params.jitter[b]:
        for op in params.order[b].tolist():
            x = COLOR_OPS[op](x, float(params.factors[b, op]))
    if params.gray[b] and x.shape[0] == 3:
        x = TF.rgb_to_grayscale(x, num_output_channels=3)
    return TF.normalize(x, [0.5] * x.shape[0], [0.5] * x.shape[0])


def random_images(batch, channels, height, width, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, channels, height, width), dtype=torch.uint8, generator=g)


def smooth_images(batch, channels, height, width, seed=0):
    """Low-frequency colour images (random pixels make every interpolation error look large)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, channels, 4, 4, generator=g)
    return (F.interpolate(coarse, (height, width), mode="bicubic").clamp(0, 1) * 255).round().byte()


@pytest.mark.parametrize(
    "channels, in_size, out_size",
    [(3, 32, 32), (3, 20, 32), (1, 28, 28), (1, 8, 8), (3, 24, 16)],
)
def test_matches_torchvision_per_sample(channels, in_size, out_size):
    images = random_images(24, channels, in_size, in_size, seed=channels + in_size)
    augment = TwoViews(out_size, channels)
    params = augment.sample(24, in_size, in_size, torch.Generator().manual_seed(7))
    ours = augment.apply(images, params)
    assert ours.shape == (24, channels, out_size, out_size) and ours.dtype == torch.float32
    compared = 0
    for b in range(24):
        box_larger = params.height[b] > out_size or params.width[b] > out_size
        if box_larger:  # shrinking: torchvision antialiases, we interpolate plainly
            continue
        expected = torchvision_view(images[b], params, b, out_size)
        torch.testing.assert_close(ours[b], expected, atol=1e-5, rtol=0)
        compared += 1
    assert compared >= 4


def test_hue_shift_with_ties_and_grays_matches_torchvision():
    from rkdo.vision.augment import _shift_hue

    # Three levels per channel: many pixels with two or three equal channels (hue ties, C = 0).
    images = (random_images(12, 3, 9, 9, seed=11) // 86).float() / 2
    shifts = torch.linspace(-0.5, 0.5, 12)
    ours = _shift_hue(images, shifts)
    for b in range(12):
        expected = TF.adjust_hue(images[b], float(shifts[b]))
        torch.testing.assert_close(ours[b], expected, atol=1e-5, rtol=0)


def test_crop_of_known_box_matches_resized_crop():
    images = smooth_images(3, 3, 40, 36)
    augment = TwoViews(32, 3)
    # top, left, height, width: enlarged, enlarged in one side only, shrunk (40 -> 32 rows).
    boxes = [(3, 5, 17, 11), (4, 2, 32, 30), (0, 0, 40, 36)]
    params = augment.sample(3, 40, 36, torch.Generator().manual_seed(0))
    params.top, params.left, params.height, params.width = (
        torch.tensor(v) for v in zip(*boxes, strict=True)
    )
    params.flip[:] = False
    ours = augment._crop_flip(images.float() / 255, params)
    for b, box in enumerate(boxes):
        # Enlarging, antialiasing changes nothing; shrinking, we match plain bilinear.
        antialias = b < 2
        expected = TF.resized_crop(images[b].float() / 255, *box, [32, 32], antialias=antialias)
        torch.testing.assert_close(ours[b], expected, atol=1e-6, rtol=0)
    params.flip[:] = True
    flipped = augment._crop_flip(images.float() / 255, params)
    torch.testing.assert_close(flipped, ours.flip(-1), atol=1e-6, rtol=0)


def test_identity_view_returns_the_image():
    images = random_images(5, 3, 16, 16)
    augment = TwoViews(16, 3, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0, jitter_p=0, gray_p=0)
    view = augment.view(images, torch.Generator().manual_seed(0))
    torch.testing.assert_close(view, images.float() / 127.5 - 1, atol=1e-6, rtol=0)


@pytest.mark.parametrize("height, width", [(32, 32), (28, 28), (64, 48)])
def test_crop_boxes_follow_torchvision_sampler(height, width):
    n = 4000
    augment = TwoViews(32, 3)
    ours = augment.sample(n, height, width, torch.Generator().manual_seed(1))
    torch.manual_seed(2)
    image = torch.empty(1, height, width)
    theirs = np.array(
        [RandomResizedCrop.get_params(image, [0.2, 1.0], [3 / 4, 4 / 3]) for _ in range(n)]
    )
    top, left, h, w = (v.numpy() for v in (ours.top, ours.left, ours.height, ours.width))
    assert np.all((top >= 0) & (left >= 0) & (top + h <= height) & (left + w <= width))
    assert np.all((h >= 1) & (w >= 1))
    area = h * w / (height * width)
    their_area = theirs[:, 2] * theirs[:, 3] / (height * width)
    # Rounding the side lengths can take the area a little below 0.2.
    assert area.min() >= 0.17 and area.max() <= 1.0
    assert abs(area.mean() - their_area.mean()) < 0.015  # sd of each mean ~0.0035
    assert stats.ks_2samp(area, their_area).pvalue > 1e-3
    aspect, their_aspect = w / h, theirs[:, 3] / theirs[:, 2]
    assert stats.ks_2samp(np.log(aspect), np.log(their_aspect)).pvalue > 1e-3
    # Positions: uniform over the free range, so their normalised mean is 1/2.
    free = height - h
    assert abs(np.mean(top[free > 0] / free[free > 0]) - 0.5) < 0.03


def test_crop_fallback_is_torchvision_central_crop():
    # An 8 x 64 image with square boxes of at least 90% of its area: no try fits.
    augment = TwoViews(8, 1, scale=(0.9, 1.0), ratio=(1.0, 1.0))
    params = augment.sample(16, 64, 8, torch.Generator().manual_seed(0))
    expected = RandomResizedCrop.get_params(torch.empty(1, 64, 8), [0.9, 1.0], [1.0, 1.0])
    assert expected == (28, 0, 8, 8)
    for v, want in zip(
        (params.top, params.left, params.height, params.width), expected, strict=True
    ):
        assert torch.all(v == want)


def test_event_rates_and_factor_ranges():
    n = 20000
    params = TwoViews(32, 3).sample(n, 32, 32, torch.Generator().manual_seed(3))
    for rate, p in ((params.flip, 0.5), (params.jitter, 0.8), (params.gray, 0.2)):
        observed = rate.double().mean().item()
        assert abs(observed - p) < 4 * math.sqrt(p * (1 - p) / n)
    lows = torch.tensor([0.6, 0.6, 0.6, -0.1])
    highs = torch.tensor([1.4, 1.4, 1.4, 0.1])
    assert torch.all((params.factors >= lows) & (params.factors <= highs))
    # Uniform factors: each quartile of each range holds a quarter of the draws.
    quartile = ((params.factors - lows) / (highs - lows) * 4).floor().clamp(max=3).long()
    for column in range(4):
        counts = torch.bincount(quartile[:, column], minlength=4).numpy()
        assert stats.chisquare(counts).pvalue > 1e-3
    # Orders: all 24 permutations, equally often.
    index = {p: k for k, p in enumerate(itertools.permutations(range(4)))}
    codes = [index[tuple(row)] for row in params.order.tolist()]
    assert stats.chisquare(np.bincount(codes, minlength=24)).pvalue > 1e-3


def test_one_channel_skips_saturation_hue_and_grayscale():
    images = random_images(32, 1, 12, 12)
    augment = TwoViews(12, 1)
    params = augment.sample(32, 12, 12, torch.Generator().manual_seed(4))
    params.jitter[:] = True
    params.gray[:] = True
    rgb_like = augment.apply(images, params)
    params.factors[:, 2:] = torch.tensor([1.0, 0.0])  # no saturation change, no hue shift
    params.gray[:] = False
    assert torch.equal(augment.apply(images, params), rgb_like)


def test_same_seed_same_views_and_range():
    images = random_images(16, 3, 32, 32)
    augment = TwoViews(32, 3)
    v1, v2 = augment(images, torch.Generator().manual_seed(123))
    w1, w2 = augment(images, torch.Generator().manual_seed(123))
    assert torch.equal(v1, w1) and torch.equal(v2, w2)
    assert v1.shape == v2.shape == (16, 3, 32, 32)
    assert v1.min() >= -1 and v1.max() <= 1 and v2.min() >= -1 and v2.max() <= 1
    assert not torch.equal(v1, v2)
    u1, _ = augment(images, torch.Generator().manual_seed(124))
    assert not torch.equal(u1, v1)
    # The views use the generator one after the other: view 1 is the first half of a 2B batch.
    g = torch.Generator().manual_seed(5)
    both = augment.apply(torch.cat((images, images)), augment.sample(32, 32, 32, g))
    x1, x2 = augment(images, torch.Generator().manual_seed(5))
    assert torch.equal(both[:16], x1) and torch.equal(both[16:], x2)


def test_float_images_in_unit_range_are_accepted():
    images = random_images(4, 3, 16, 16)
    augment = TwoViews(16, 3)
    a = augment.view(images, torch.Generator().manual_seed(0))
    b = augment.view(images.float() / 255, torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_images_with_cpu_generator_match_cpu():
    images = smooth_images(8, 3, 32, 32)
    augment = TwoViews(32, 3)
    cpu = augment(images, torch.Generator().manual_seed(9))
    gpu = augment(images.cuda(), torch.Generator().manual_seed(9))
    for a, b in zip(cpu, gpu, strict=True):
        assert b.device.type == "cuda"
        torch.testing.assert_close(b.cpu(), a, atol=1e-4, rtol=0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="channels"):
        TwoViews(32, 2)
    with pytest.raises(ValueError, match="scale"):
        TwoViews(32, 3, scale=(0.0, 1.0))
    with pytest.raises(ValueError, match="ratio"):
        TwoViews(32, 3, ratio=(2.0, 1.0))
    with pytest.raises(ValueError, match="jitter"):
        TwoViews(32, 3, jitter=(0.4, 0.4, 0.4, 0.6))
    with pytest.raises(ValueError, match="flip_p"):
        TwoViews(32, 3, flip_p=1.5)
    with pytest.raises(ValueError, match="size"):
        TwoViews(0, 3)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        TwoViews(32, 3)(random_images(2, 1, 32, 32))
    with pytest.raises(ValueError, match="uint8 or floating"):
        TwoViews(32, 3)(torch.zeros(2, 3, 32, 32, dtype=torch.int32))


def test_to_float():
    images = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 1, 1, 3).expand(2, 3, 3, 3)
    out = to_float(images)
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([-1.0, -0.6, 1.0]))
    big = smooth_images(3, 3, 40, 40)
    resized = to_float(big, 20)
    expected = TF.resize(big.float() / 255, [20, 20], antialias=True) * 2 - 1
    torch.testing.assert_close(resized, expected, atol=1e-5, rtol=0)
    assert to_float(big, 40).shape == (3, 3, 40, 40)
