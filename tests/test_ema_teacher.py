"""SupCon with an EMA teacher against the formula written out in numpy, and the EMA update."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rkdo import methods
from rkdo.ema_teacher import EMATeacherLoss


class _Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.linear(x), dim=1)


def _softmax(s: np.ndarray) -> np.ndarray:
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _reference(z1, z2, e1, e2, labels, alpha, tau) -> float:
    same = (labels[:, None] == labels[None, :]).astype(float)
    p = (1 - alpha) * same / same.sum(axis=1, keepdims=True) + alpha * _softmax(e1 @ e2.T / tau)
    q = _softmax(z1 @ z2.T / tau)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(q)), 0.0)
    return float(terms.sum(axis=1).mean())


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_matches_the_formula_and_updates_the_teacher(alpha: float) -> None:
    torch.manual_seed(0)
    student = _Encoder()
    loss = EMATeacherLoss(alpha=alpha, momentum=0.9, temperature=0.5)
    loss.attach(model=student)
    with torch.no_grad():  # the student moves away from the teacher's copy
        for p in student.parameters():
            p.add_(0.3)
    old = [p.detach().clone() for p in loss.teacher.parameters()]
    v1, v2 = torch.randn(12, 6), torch.randn(12, 6)
    labels = torch.tensor([0, 1, 2] * 4)
    z1, z2 = student(v1), student(v2)
    value = loss(z1, z2, labels=labels, view1=v1, view2=v2)
    pairs = zip(old, loss.teacher.parameters(), student.parameters(), strict=True)
    for before, now, theirs in pairs:
        assert torch.allclose(now, 0.9 * before + 0.1 * theirs)
    e1, e2 = (loss.teacher(v).detach().numpy() for v in (v1, v2))
    expected = _reference(z1.detach().numpy(), z2.detach().numpy(), e1, e2, labels.numpy(),
                          alpha, 0.5)
    assert value.item() == pytest.approx(expected, rel=1e-5)
    value.backward()
    assert student.linear.weight.grad is not None
    assert all(p.grad is None for p in loss.teacher.parameters())
    assert all(not p.requires_grad for p in loss.parameters())


def test_alpha_zero_is_supcon() -> None:
    torch.manual_seed(2)
    student = _Encoder()
    loss = EMATeacherLoss(alpha=0.0, temperature=0.2)
    loss.attach(model=student)
    v1, v2 = torch.randn(8, 6), torch.randn(8, 6)
    labels = torch.tensor([0, 1] * 4)
    z1, z2 = student(v1), student(v2)
    supcon = methods.get("supcon", temperature=0.2)(z1, z2, labels=labels)
    assert loss(z1, z2, labels=labels, view1=v1, view2=v2).item() == pytest.approx(
        supcon.item(), rel=1e-6)


def test_errors_say_what_to_do() -> None:
    loss = EMATeacherLoss()
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match="needs the views"):
        loss(z, z, labels=torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="attach"):
        loss(z, z, labels=torch.zeros(4, dtype=torch.long), view1=z, view2=z)
