"""Batched two-view augmentation on the images' device, with per-sample random parameters.

The reference recipe, per image ``x`` with values in [0, 1] (SimCLR's, as the notebooks use it):

    v = normalize(gray_p(jitter_p(flip(resized_crop(x)))))

- ``resized_crop``: a box of area fraction ``s ~ U(scale)`` and aspect ratio
  ``r ~ logU(ratio)`` (torchvision's ``RandomResizedCrop`` sampler: 10 tries, then a central
  crop), resized to ``size`` x ``size`` with bilinear interpolation;
- ``flip``: horizontal flip with probability ``flip_p``;
- ``jitter_p``: with probability ``jitter_p``, brightness ``x <- clamp(b x)``, contrast
  ``x <- clamp(c x + (1 - c) mean(gray(x)))``, saturation ``x <- clamp(s x + (1 - s) gray(x))``
  and hue ``H <- (H + h) mod 1`` in HSV, in a random order per image, with
  ``b, c, s ~ U(max(0, 1 - j), 1 + j)`` and ``h ~ U(-j_hue, j_hue)``;
- ``gray_p``: with probability ``gray_p``, ``x <- gray(x) = 0.2989 R + 0.587 G + 0.114 B``;
- ``normalize``: ``v = 2 x - 1`` (mean 0.5, std 0.5 per channel).

Here the whole batch is augmented at once: crop, resize and flip are one per-sample sampling grid
for ``F.grid_sample`` (its coordinates clamped to the crop box, which is what cropping then
resizing does at the box's edges); brightness, contrast and saturation are one per-sample blend,
the hue shift is a branch-free HSV rotation, and each image's random order becomes three blend
stages before the hue shift and three after it, every image using the stages its order needs.
There are no Python loops over samples and no host synchronisations; the work happens in place
on one buffer (fresh image-sized tensors are costly on CPU). Both views of a batch are augmented
as one batch of ``2 B``.
The arithmetic matches ``torchvision.transforms.v2.functional`` on float images to rounding
(tests check it), except that shrinking a crop (``size`` smaller than the box) is plain bilinear
without antialiasing.

For 1-channel images saturation, hue and grayscale are identities (as in torchvision and PIL);
their random numbers are still drawn, so a seed gives the same crops for any channel count.

All randomness comes from the ``generator`` argument (or the default generator of the images'
device when it is ``None``): a seeded generator gives bitwise-identical views on CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rkdo._validation import check_int, check_unit_interval

__all__ = ["AugmentParams", "TwoViews", "to_float", "GRAY_WEIGHTS"]

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)
"""ITU-R 601-2 luma weights, as torchvision and PIL use for ``rgb_to_grayscale``."""

BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)
_CROP_TRIES = 10
_DRAW_SPLIT = (_CROP_TRIES, _CROP_TRIES, 2, 1, 1, 4, 4, 1)
_DRAWS = sum(_DRAW_SPLIT)


@dataclass
class AugmentParams:
    """Per-sample parameters of one augmented view of a batch of ``B`` images.

    Attributes:
        top, left, height, width: int64 (B,) crop box in source pixels.
        flip: bool (B,) horizontal flip.
        jitter: bool (B,) whether colour jitter is applied.
        factors: float (B, 4) brightness, contrast, saturation factors and hue shift.
        order: int64 (B, 4) the permutation of (brightness, contrast, saturation, hue).
        gray: bool (B,) grayscale conversion.
    """

    top: Tensor
    left: Tensor
    height: Tensor
    width: Tensor
    flip: Tensor
    jitter: Tensor
    factors: Tensor
    order: Tensor
    gray: Tensor

    def to(self, device: torch.device | str) -> AugmentParams:
        return AugmentParams(
            **{k: v.to(device, non_blocking=True) for k, v in self.__dict__.items()}
        )


def _check_range(name: str, value: tuple[float, float], low: float, high: float) -> tuple:
    lo, hi = (float(v) for v in value)
    if not (low < lo <= hi <= high):
        raise ValueError(
            f"{name} must be (low, high) with {low} < low <= high <= {high}, got {value!r}"
        )
    return lo, hi


def _gray(x: Tensor) -> Tensor:
    """Luma of (B, 3, H, W) images, (B, 1, H, W)."""
    r, g, b = x.unbind(dim=1)
    return (
        r.mul(GRAY_WEIGHTS[0])
        .add_(g, alpha=GRAY_WEIGHTS[1])
        .add_(b, alpha=GRAY_WEIGHTS[2])[:, None]
    )


def _shift_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Add ``shift`` (B,) to the HSV hue of RGB images ``x`` (B, 3, H, W) in [0, 1].

    With ``V = max(R, G, B)``, chroma ``C = V - min(R, G, B)`` and ``d_c = V - c``, the hue in
    sixths of a turn is ``(d_B - d_G) / C``, ``2 + (d_R - d_B) / C`` or ``4 + (d_G - d_R) / C``
    for the first channel of (R, G, B) that holds ``V`` (torchvision's ``_rgb2hsv``). A hue
    shift keeps ``V`` and ``C``, so the inverse map needs only the new hue ``H'``:
    ``out_n = V - C clamp(2 - |k_n - 2|, 0, 1)``, ``k_n = (n + 6 H') mod 6``, ``n = 5, 3, 1``.
    The channel choice is a pair of float masks (``sign(d_c)`` is 0 where ``c`` holds the
    maximum) rather than ``torch.where``, and most steps are in place: both are several times
    faster on CPU, where each fresh image-sized tensor can cost page faults.
    """
    value = x.amax(dim=1, keepdim=True)
    chroma = value - x.amin(dim=1, keepdim=True)
    distance = value - x
    d_r, d_g, d_b = distance.unbind(dim=1)
    not_r, not_g = torch.sign(d_r), torch.sign(d_g)
    from_g = torch.sub(d_r, d_b).add_(chroma[:, 0], alpha=2.0)
    from_b = torch.sub(d_g, d_r).add_(chroma[:, 0], alpha=4.0)
    sector = torch.sub(d_b, d_g).lerp_(from_g.lerp_(from_b, not_g), not_r)
    safe = torch.sign(chroma[:, 0]).neg_().add_(1.0).add_(chroma[:, 0])  # C, or 1 where C = 0
    # sector / (6 C) lies in [-1/6, 5/6] and |shift| <= 1/2, so the argument of frac is > 0.
    hue = sector.div_(safe).div_(6.0).add_((shift + 1.0).view(-1, 1, 1)).frac_()
    offsets = torch.tensor([5.0, 3.0, 1.0], device=x.device, dtype=x.dtype).view(1, 3, 1, 1) / 6.0
    ramp = torch.add(hue[:, None], offsets).frac_().mul_(6.0).sub_(2.0).abs_()
    ramp = ramp.neg_().add_(2.0).clamp_(0.0, 1.0)
    return ramp.mul_(chroma).neg_().add_(value)


class TwoViews(nn.Module):
    """Two independently augmented views of a batch (see the module docstring for the recipe).

    Args:
        size: output side length in pixels.
        channels: 1 (grayscale) or 3 (RGB).
        scale: range of the crop's area fraction, ``0 < low <= high <= 1``.
        ratio: range of the crop's aspect ratio (width / height), sampled log-uniformly.
        flip_p: probability of a horizontal flip.
        jitter: brightness, contrast, saturation (each >= 0) and hue (in [0, 0.5]) strengths.
        jitter_p: probability of applying colour jitter.
        gray_p: probability of grayscale conversion.

    ``forward(images, generator)`` takes uint8 (B, C, H, W) images (or floats in [0, 1]) and
    returns two float32 views in [-1, 1] of shape (B, C, size, size) on the images' device.
    """

    def __init__(
        self,
        size: int,
        channels: int,
        scale: tuple[float, float] = (0.2, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip_p: float = 0.5,
        jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1),
        jitter_p: float = 0.8,
        gray_p: float = 0.2,
    ) -> None:
        super().__init__()
        self.size = check_int("size", size, low=1)
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels!r}")
        self.channels = int(channels)
        self.scale = _check_range("scale", scale, 0.0, 1.0)
        self.ratio = _check_range("ratio", ratio, 0.0, math.inf)
        self.flip_p = check_unit_interval("flip_p", flip_p)
        if len(jitter) != 4 or any(float(j) < 0 for j in jitter) or float(jitter[3]) > 0.5:
            raise ValueError(
                "jitter must be (brightness, contrast, saturation, hue) with each >= 0 and "
                f"hue <= 0.5, got {jitter!r}"
            )
        self.jitter = tuple(float(j) for j in jitter)
        self.jitter_p = check_unit_interval("jitter_p", jitter_p)
        self.gray_p = check_unit_interval("gray_p", gray_p)
        low = [max(0.0, 1.0 - j) for j in self.jitter[:3]] + [-self.jitter[3]]
        high = [1.0 + j for j in self.jitter[:3]] + [self.jitter[3]]
        self._factor_range = (torch.tensor(low), torch.tensor(high))

    def extra_repr(self) -> str:
        return (
            f"size={self.size}, channels={self.channels}, scale={self.scale}, ratio={self.ratio}, "
            f"flip_p={self.flip_p}, jitter={self.jitter}, jitter_p={self.jitter_p}, "
            f"gray_p={self.gray_p}"
        )

    # ------------------------------------------------------------------ sampling

    def sample(
        self,
        batch: int,
        height: int,
        width: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> AugmentParams:
        """Draw the parameters of one view for ``batch`` images of ``height`` x ``width``.

        The numbers are drawn on the generator's device (the default CPU generator when
        ``generator`` is None and ``device`` is not given) and moved to ``device``.
        """
        if generator is not None:
            draw_device = generator.device
        else:
            draw_device = torch.device("cpu") if device is None else torch.device(device)

        # One draw per image: 10 + 10 crop tries, crop position (2), flip, jitter, 4 jitter
        # factors, 4 keys whose ranks give the jitter order, grayscale.
        draws = torch.rand((batch, _DRAWS), generator=generator, device=draw_device)
        area, aspect, position, flip, jitter, factors, order, gray = draws.split(_DRAW_SPLIT, 1)
        top, left, box_h, box_w = self._sample_boxes(height, width, area, aspect, position)
        flip = flip.squeeze(1) < self.flip_p
        jitter = jitter.squeeze(1) < self.jitter_p
        low, high = self._factor_range
        factors = factors * (high - low).to(draw_device) + low.to(draw_device)
        order = order.argsort(dim=1)
        gray = gray.squeeze(1) < self.gray_p
        params = AugmentParams(top, left, box_h, box_w, flip, jitter, factors, order, gray)
        return params if device is None else params.to(device)

    def _sample_boxes(
        self, height: int, width: int, area: Tensor, aspect: Tensor, position: Tensor
    ) -> tuple[Tensor, ...]:
        """torchvision's ``RandomResizedCrop.get_params`` for a batch, from uniform draws.

        ``area``, ``aspect``: (B, 10) draws for the tries; ``position``: (B, 2).
        """
        target = (height * width) * (self.scale[0] + (self.scale[1] - self.scale[0]) * area)
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(log_lo + (log_hi - log_lo) * aspect)
        w = torch.round(torch.sqrt(target * aspect))
        h = torch.round(torch.sqrt(target / aspect))
        valid = (w >= 1) & (w <= width) & (h >= 1) & (h <= height)
        first = valid.to(torch.uint8).argmax(dim=1, keepdim=True)  # first valid try
        found = valid.any(dim=1)
        # Fallback (no valid try): the largest central box with the aspect ratio clamped to range.
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            fallback_w, fallback_h = width, round(width / self.ratio[0])
        elif in_ratio > self.ratio[1]:
            fallback_w, fallback_h = round(height * self.ratio[1]), height
        else:
            fallback_w, fallback_h = width, height
        w = torch.where(found, w.gather(1, first).squeeze(1), float(fallback_w))
        h = torch.where(found, h.gather(1, first).squeeze(1), float(fallback_h))
        top = torch.minimum(torch.floor(position[:, 0] * (height - h + 1)), height - h)
        left = torch.minimum(torch.floor(position[:, 1] * (width - w + 1)), width - w)
        top = torch.where(found, top, torch.floor((height - h) / 2))
        left = torch.where(found, left, torch.floor((width - w) / 2))
        return top.long(), left.long(), h.long(), w.long()

    # ------------------------------------------------------------------ applying

    def apply(self, images: Tensor, params: AugmentParams) -> Tensor:
        """The view of ``images`` given by ``params``: float32 in [-1, 1], (B, C, size, size)."""
        x = self._check_images(images)
        x = self._color_jitter(self._crop_flip(x, params), params)
        if self.channels == 3:
            x = x.lerp_(_gray(x).expand_as(x), params.gray.to(x.dtype).view(-1, 1, 1, 1))
        return x.mul_(2.0).sub_(1.0)

    def view(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One augmented view of ``images`` with fresh random parameters."""
        params = self.sample(
            images.shape[0], images.shape[-2], images.shape[-1], generator, images.device
        )
        return self.apply(images, params)

    def forward(
        self, images: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Two independent views of ``images``.

        Both views are augmented as one batch of ``2 B`` images (half the per-operation overhead);
        view 1 takes the first ``B`` parameter draws, view 2 the next ``B``.
        """
        batch = images.shape[0]
        both = self.view(torch.cat((images, images)), generator)
        return both[:batch], both[batch:]

    def _check_images(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[1] != self.channels:
            raise ValueError(
                f"images must be (B, {self.channels}, H, W), got shape {tuple(images.shape)}"
            )
        if images.dtype == torch.uint8:
            return images.float().div_(255.0)
        if images.is_floating_point():
            return images.float()
        raise ValueError(f"images must be uint8 or floating point in [0, 1], got {images.dtype}")

    def _crop_flip(self, x: Tensor, params: AugmentParams) -> Tensor:
        """Crop each box, resize it to ``size`` (bilinear) and flip: one ``grid_sample``.

        Output pixel ``o`` (centre ``o + 1/2``) of a box ``[start, start + length)`` samples the
        source at ``start + (o + 1/2) length / size - 1/2``, clamped to the box's first and last
        pixel centres (resizing the cropped image replicates its edge), mirrored for a flip.
        """
        batch, _, height, width = x.shape
        centres = (torch.arange(self.size, device=x.device, dtype=torch.float32) + 0.5) / self.size

        def axis(start: Tensor, length: Tensor, extent: int, flip: Tensor | None) -> Tensor:
            start, length = start.float().unsqueeze(1), length.float().unsqueeze(1)
            fraction = centres.expand(batch, -1)
            if flip is not None:
                fraction = torch.where(flip.unsqueeze(1), 1.0 - fraction, fraction)
            source = (start + fraction * length - 0.5).clamp(start, start + length - 1.0)
            return (2.0 * source + 1.0) / extent - 1.0  # grid_sample's align_corners=False

        gx = axis(params.left, params.width, width, params.flip)
        gy = axis(params.top, params.height, height, None)
        grid = torch.stack(
            (gx.unsqueeze(1).expand(-1, self.size, -1), gy.unsqueeze(2).expand(-1, -1, self.size)),
            dim=-1,
        )
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def _color_jitter(self, x: Tensor, params: AugmentParams) -> Tensor:
        """Brightness, contrast, saturation and hue in each image's own order, in place.

        Brightness, contrast and saturation are one blend
        ``clamp(a x + g gray(x) + m mean(gray(x)))`` whose per-sample coefficients select the
        operation (``a = 1, g = m = 0`` is the identity). For RGB the order becomes three blend
        stages for the operations before the hue shift, the hue shift, and three blend stages for
        the operations after it (each image uses as many as its order needs), so the costly hue
        shift runs once; one channel needs only the three blend stages. Per-sample choices are
        float masks, not ``torch.where``, which is slow on CPU.
        """
        batch = x.shape[0]
        rgb = self.channels == 3
        jitter = params.jitter
        # Blend operations in the image's order without the hue; where the hue sits in it.
        is_hue = params.order == HUE
        hue_position = is_hue.to(torch.int64).argmax(dim=1, keepdim=True)
        blends = params.order.masked_select(~is_hue).view(batch, 3)
        if rgb:  # stages 0-2 before the hue shift, 3-5 after it
            slot = torch.arange(3, device=x.device).expand(batch, -1)
            ops = torch.cat((blends, blends), dim=1)
            active = torch.cat((slot < hue_position, slot >= hue_position), dim=1)
        else:  # no hue shift and no saturation on one channel: three stages suffice
            ops = blends
            active = ops != SATURATION
        active = active & jitter[:, None]
        stages = ops.shape[1]
        f = torch.where(active, params.factors.gather(1, ops), 1.0)
        scale = f.view(batch, stages, 1, 1, 1)
        to_gray = ((ops == SATURATION) * (1.0 - f)).view(batch, stages, 1, 1, 1)
        to_mean = (ops == CONTRAST) * (1.0 - f)
        for stage in range(stages):
            luma = _gray(x) if rgb else x
            offset = (to_mean[:, stage] * luma.mean(dim=(1, 2, 3))).view(batch, 1, 1, 1)
            x = x.mul_(scale[:, stage]).add_(offset)
            if rgb:
                x = x.addcmul_(luma, to_gray[:, stage])
            x = x.clamp_(0.0, 1.0)
            if stage == 2 and rgb:
                hue_here = jitter.to(x.dtype).view(batch, 1, 1, 1)
                x = x.lerp_(_shift_hue(x, params.factors[:, HUE]), hue_here)
        return x


def to_float(images: Tensor, size: int | None = None) -> Tensor:
    """uint8 (B, C, H, W) images -> float32 in [-1, 1], resized to ``size`` if given.

    For evaluation: no augmentation; resizing is antialiased bilinear.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    x = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
    if size is not None and x.shape[-2:] != (size, size):
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        x = x.clamp_(0.0, 1.0)
    return x * 2.0 - 1.0
