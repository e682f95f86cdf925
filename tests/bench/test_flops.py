"""Tests for rkdo.bench.flops: FLOP counts against closed forms."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rkdo.bench import flops as profile
from rkdo.losses import IConLoss, RKDOLoss
from rkdo.training import LossCall


@pytest.mark.parametrize("batch,inputs,outputs", [(4, 3, 5), (64, 32, 10)])
def test_linear_flops_equal_the_closed_form(batch: int, inputs: int, outputs: int) -> None:
    layer = nn.Linear(inputs, outputs)
    x = torch.randn(batch, inputs, requires_grad=True)
    # y = x W^T + b: one (B x i) @ (i x o) product, 2 B i o FLOPs (the bias add is not counted)
    assert profile.count_flops(lambda: layer(x)) == 2 * batch * inputs * outputs
    # backward: dL/dx = g W (2 B o i) and dL/dW = g^T x (2 o B i); the bias gradient is a sum
    assert profile.count_flops(lambda: layer(x).sum().backward()) == 6 * batch * inputs * outputs
    # without an input gradient only the weight gradient is computed
    x_const = torch.randn(batch, inputs)
    assert profile.count_flops(lambda: layer(x_const).sum().backward()) == \
        4 * batch * inputs * outputs


class LinearEncoder(nn.Module):
    """z = normalize(W flatten(x)): the smallest encoder with a known FLOP count."""

    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__()
        self.layer = nn.Linear(in_dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.layer(x.flatten(1)), dim=1)


@pytest.mark.parametrize("depth", [None, 1, 3])
def test_step_flops_of_a_linear_encoder_and_the_losses(depth: int | None) -> None:
    batch, channels, size, dim = 8, 1, 4, 6
    in_dim = channels * size * size
    torch.manual_seed(0)
    encoder = LinearEncoder(in_dim, dim)
    loss = IConLoss() if depth is None else RKDOLoss(depth=depth)
    views = (torch.randn(batch, channels, size, size), torch.randn(batch, channels, size, size))
    labels = torch.zeros(batch, dtype=torch.long)
    forward, train, loss_only, seconds = profile.profile_step(
        encoder, LossCall(loss), views, labels, steps=2, warmup=1,
    )
    # one z1 z2^T, shared by all K+1 temperatures of RKDO (the rest is element-wise, uncounted)
    similarity = 2 * batch * batch * dim
    encoder_fwd = 2 * (2 * batch * in_dim * dim)  # two views
    assert loss_only == similarity
    assert forward == encoder_fwd + similarity
    # backward: weight gradient per view (inputs need no gradient), both operands of z1 z2^T
    assert train == forward + encoder_fwd + 2 * similarity
    assert len(seconds) == 2 and all(t > 0 and math.isfinite(t) for t in seconds)


def test_format_table_reports_ratios() -> None:
    rows = [
        profile.StepProfile("rkdo depth 1", "rkdo", 1, 64, 32, "resnet18", 9_553_700_000,
                            28_000_000_000, 1_000_000, 0.100, 5, "cpu", 1),
        profile.StepProfile("rkdo depth 3", "rkdo", 3, 64, 32, "resnet18", 9_554_655_370,
                            28_000_000_000, 2_000_000, 0.110, 5, "cpu", 1),
    ]
    table = profile.format_table(rows)
    assert "+0.0100%" in table  # 9554655370 / 9553700000 - 1 = 1.0e-4
    assert "+10.0%" in table
    assert "9.5545" in table and "1.0000" in table
    assert profile.format_table(rows, markdown=True).startswith("| variant |")


def test_profile_calls_every_loss_shape_as_the_trainer_does() -> None:
    variants = [("tsne", {"method": "tsne", "perplexity": 3.0}),
                ("temporal icon", {"method": "icon", "recursion": "temporal"}),
                ("symmetric simclr", {"method": "simclr", "form": "symmetric"})]
    rows = profile.profile("small-cnn", batch_size=8, image_size=8, channels=1,
                           variants=variants, embedding_dim=8, hidden_dim=16, steps=0)
    assert [r.label for r in rows] == [label for label, _ in variants]
    # the same encoder on the same views: only the losses' FLOPs differ
    encoder = {r.forward_flops - r.loss_forward_flops for r in rows}
    assert len(encoder) == 1 and all(r.loss_forward_flops > 0 for r in rows)


def test_timed_steps_keep_the_dataset_indices_of_a_temporal_loss() -> None:
    # the timing loop once reused the name of the batch's index tensor for its step counter
    rows = profile.profile("small-cnn", batch_size=8, image_size=8, channels=1,
                           variants=[("temporal icon", {"method": "icon",
                                                        "recursion": "temporal"})],
                           embedding_dim=8, hidden_dim=16, steps=2, warmup=1)
    assert rows[0].timed_steps == 2 and rows[0].median_step_seconds > 0
    # the spread and the load come with the median
    row = rows[0]
    assert row.min_step_seconds <= row.median_step_seconds <= row.max_step_seconds
    assert row.load_average is None or row.load_average >= 0


def _timed(label: str, median: float, low: float, high: float) -> profile.StepProfile:
    return profile.StepProfile(label, "rkdo", 1, 8, 8, "small-cnn", 10, 30, 1, median, 5, "cpu",
                               1, min_step_seconds=low, max_step_seconds=high, load_average=8.0)


def test_a_time_ratio_within_the_spread_says_so() -> None:
    first = _timed("a", 0.100, 0.090, 0.400)
    assert profile.time_verdict(_timed("b", 0.670, 0.300, 0.900), first) == (
        "+570.0% (within the spread)")
    assert profile.time_verdict(_timed("c", 0.670, 0.600, 0.900), first) == "+570.0%"
    table = profile.format_table([first, _timed("b", 0.670, 0.300, 0.900)])
    assert "100.0 [90.0, 400.0]" in table and "8.00" in table and "load (1 min)" in table
    # a row stored before the spread was recorded still formats, and says so
    old = profile.StepProfile("old", "icon", None, 8, 8, "small-cnn", 10, 30, 1, 0.2, 5, "cpu", 1)
    assert profile.time_verdict(old, first) == "+100.0% (no spread recorded)"


def test_an_unknown_method_is_refused_before_any_work() -> None:
    with pytest.raises(ValueError, match="unknown method 'nosuch'.*known: .*icon"):
        profile.profile("small-cnn", variants=[("nosuch", {"method": "nosuch"})])
