"""Cross-entropy with bootstrapping against Reed et al.'s formula written out in numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rkdo.bootstrap import ClassifierLoss


def _reference(logits: np.ndarray, labels: np.ndarray, alpha: float, mode: str) -> float:
    shifted = logits - logits.max(axis=1, keepdims=True)
    q = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    onehot = np.eye(logits.shape[1])[labels]
    own = q if mode == "soft" else np.eye(logits.shape[1])[q.argmax(axis=1)]
    target = (1 - alpha) * onehot + alpha * own
    return float(-(target * np.log(q)).sum(axis=1).mean())


@pytest.mark.parametrize(("alpha", "mode"), [(0.0, "soft"), (0.05, "soft"), (0.2, "hard")])
def test_matches_reed_et_al(alpha: float, mode: str) -> None:
    torch.manual_seed(0)
    loss = ClassifierLoss(8, 5, alpha=alpha, mode=mode, temperature=0.5)
    z1, z2 = torch.randn(16, 8), torch.randn(16, 8)
    labels = torch.randint(0, 5, (16,))
    w, b = loss.head.weight.detach().numpy(), loss.head.bias.detach().numpy()
    expected = [_reference((z.numpy() @ w.T + b) / 0.5, labels.numpy(), alpha, mode)
                for z in (z1, z2)]
    assert loss(z1, z2, labels=labels).item() == pytest.approx(np.mean(expected), rel=1e-5)
    assert loss(z1, labels=labels).item() == pytest.approx(expected[0], rel=1e-5)


def test_plain_cross_entropy_equals_torch() -> None:
    torch.manual_seed(1)
    loss = ClassifierLoss(4, 3)
    z, labels = torch.randn(10, 4), torch.randint(0, 3, (10,))
    expected = torch.nn.functional.cross_entropy(loss.classify(z), labels)
    assert loss(z, labels=labels).item() == pytest.approx(expected.item(), rel=1e-6)


def test_head_is_trained_and_errors_say_what_to_do() -> None:
    loss = ClassifierLoss(4, 3)
    assert sum(p.numel() for p in loss.parameters()) == 4 * 3 + 3
    with pytest.raises(ValueError, match="needs labels"):
        loss(torch.randn(2, 4))
    with pytest.raises(ValueError, match="call attach"):
        ClassifierLoss(4).classify(torch.randn(2, 4))
    with pytest.raises(ValueError, match="bootstrap mode"):
        ClassifierLoss(4, 3, mode="medium")
