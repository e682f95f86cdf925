"""One protocol for calling a loss on a batch: each call shape against the loss called by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rkdo.losses import IConLoss
from rkdo.training import LossCall, TrainConfig, build_loss

B, D = 8, 5


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    z1 = F.normalize(torch.randn(B, D, generator=generator), dim=1)
    z2 = F.normalize(torch.randn(B, D, generator=generator), dim=1)
    labels = torch.randint(0, 3, (B,), generator=generator)
    view1 = torch.randn(B, 1, 4, 4, generator=generator)
    return z1, z2, labels, view1


@pytest.mark.parametrize(
    ("options", "call", "needs_inputs"),
    [
        ({"method": "icon"}, "pair", False),
        ({"method": "supcon"}, "pair", False),
        ({"method": "icon", "form": "symmetric"}, "pair", False),
        ({"method": "tsne", "perplexity": 3.0}, "single", True),
        ({"method": "simclr", "form": "single"}, "single", False),
        ({"method": "icon", "recursion": "temporal"}, "temporal", False),
        ({"method": "lightly-ntxent"}, "pair", False),
    ],
)
def test_each_config_gets_its_call(options: dict, call: str, needs_inputs: bool) -> None:
    config = TrainConfig(**options)
    made = LossCall.for_config(build_loss(config, n_samples=B), config)
    assert (made.call, made.needs_inputs) == (call, needs_inputs)


def test_the_calls_equal_the_loss_called_by_hand() -> None:
    z1, z2, labels, view1 = _batch()
    pair = IConLoss()
    assert torch.equal(LossCall(pair)(z1, z2, labels=labels), pair(z1, z2, labels=labels))
    config = TrainConfig(method="tsne", perplexity=3.0)
    single = build_loss(config, n_samples=B)
    by_hand = single(z1, labels=labels, inputs=view1.flatten(1))
    call = LossCall.for_config(single, config)
    assert torch.equal(call(z1, z2, labels=labels, view1=view1), by_hand)
    config = TrainConfig(method="icon", recursion="temporal")
    temporal = build_loss(config, n_samples=2 * B).eval()  # eval: no teacher update
    index = torch.arange(B, 2 * B)
    by_hand = temporal(z1, z2, index=index, step=0, labels=labels)
    got = LossCall.for_config(temporal, config)(z1, z2, labels=labels, index=index, step=0)
    assert torch.equal(got, by_hand)


def test_missing_batch_facts_are_named() -> None:
    z1, z2, labels, _ = _batch()
    with pytest.raises(ValueError, match="needs view1"):
        LossCall(IConLoss(), "single", needs_inputs=True)(z1, z2, labels=labels)
    config = TrainConfig(method="icon", recursion="temporal")
    temporal = LossCall.for_config(build_loss(config, n_samples=B), config)
    with pytest.raises(ValueError, match="needs index"):
        temporal(z1, z2, labels=labels)
    with pytest.raises(ValueError, match="unknown loss call 'both'"):
        LossCall(IConLoss(), "both")


def test_the_lightly_baseline_needs_no_dummy_form() -> None:
    pytest.importorskip("lightly")
    loss = build_loss(TrainConfig(method="lightly-ntxent"), n_samples=B)
    assert not hasattr(loss, "form")
    z1, z2, labels, _ = _batch()
    assert torch.isfinite(LossCall(loss)(z1, z2, labels=labels))
    with pytest.raises(ValueError, match="no teacher to record"):
        LossCall(loss).fields(z1, z2, labels, torch.arange(B), 0)


@pytest.mark.parametrize("recursion", ["in-step", "temporal"])
def test_fields_are_row_stochastic(recursion: str) -> None:
    config = TrainConfig(method="icon", recursion=recursion)
    call = LossCall.for_config(build_loss(config, n_samples=B), config)
    z1, z2, labels, _ = _batch()
    teacher, student = call.fields(z1, z2, labels, torch.arange(B), 0)
    assert teacher.shape == student.shape == (B, B)
    torch.testing.assert_close(teacher.sum(-1), torch.ones(B))
    torch.testing.assert_close(student.sum(-1), torch.ones(B))
