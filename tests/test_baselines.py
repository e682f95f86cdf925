"""The lightly baseline: lightly's NT-Xent behind our call equals rkdo's symmetric SimCLR loss.

NT-Xent over the 2B views (each view's positive is the other view of its image, the other 2B - 2
views are negatives) is I-Con with augmentation pairs, a cosine / tau kernel and the symmetric form,
without debiasing: the same number computed by two independent implementations.
"""

from __future__ import annotations

import pytest
import torch

from rkdo import IConLoss, methods
from rkdo.baselines import LightlyNTXent

pytest.importorskip("lightly")


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_lightly_ntxent_equals_symmetric_icon(temperature: float) -> None:
    torch.manual_seed(0)
    z1 = torch.randn(16, 8, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(16, 8, dtype=torch.float64, requires_grad=True)
    theirs = LightlyNTXent(temperature)(z1, z2)
    ours = IConLoss(temperature=temperature, form="symmetric", debias=0.0)(z1, z2)
    torch.testing.assert_close(theirs, ours, rtol=1e-10, atol=1e-12)
    grad_theirs = torch.autograd.grad(theirs, (z1, z2))
    grad_ours = torch.autograd.grad(ours, (z1, z2))
    for a, b in zip(grad_theirs, grad_ours, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_lightly_baseline_ignores_extra_batch_facts() -> None:
    z = torch.nn.functional.normalize(torch.randn(8, 4), dim=1)
    value = LightlyNTXent(0.5)(z, z.flip(0), labels=torch.arange(8))
    assert value.ndim == 0 and torch.isfinite(value)


@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_simclr_preset_default_equals_lightly(temperature: float) -> None:
    """``methods.get("simclr")`` is SimCLR's NT-Xent: lightly's number to float rounding."""
    from lightly.loss import NTXentLoss

    torch.manual_seed(1)
    z1, z2 = torch.randn(32, 16), torch.randn(32, 16)
    ours = methods.get("simclr", temperature=temperature)(z1, z2)
    theirs = NTXentLoss(temperature=temperature)(z1, z2)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    pair = methods.get("simclr", temperature=temperature, form="pair")(z1, z2)
    assert not torch.allclose(pair, theirs, rtol=1e-3)  # the pair form is another number


def test_lightly_is_registered_like_the_presets() -> None:
    entry = methods.METHODS["lightly-ntxent"]
    assert entry.outside and entry.temporal is None
    loss = methods.get("lightly-ntxent", temperature=0.2)
    z1, z2 = torch.randn(8, 4), torch.randn(8, 4)
    torch.testing.assert_close(loss(z1, z2), LightlyNTXent(0.2)(z1, z2))
