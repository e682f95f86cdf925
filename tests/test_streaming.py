"""Tests of rkdo.streaming: the streamed KL against autograd's numerical Jacobian (float64
gradcheck) and against the materialised score path, and that no (B, N) tensor is ever made."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from rkdo import IConLoss, RKDOLoss, losses
from rkdo.fused_scores import softmax_recursive_kl
from rkdo.kernels import Augmentation, Cosine, GaussianEmbedding, KNNGraph, SameLabel, StudentT
from rkdo.neighbourhood import build_neighbourhood
from rkdo.streaming import SameFactTarget, streaming_recursive_kl

torch.set_num_threads(1)

TAUS = [0.5, 0.48, 0.46, 0.45]
BLOCKS = [(None, None), (2, None), (3, 4), (64, 64)]  # (rows, columns): panels and blocks
EQUAL_BLOCKS = [BLOCKS[0], BLOCKS[2], BLOCKS[3]]


def _case(form: str, batch: int = 6, seed: int = 0, debias: float = 0.2):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(batch, 3, generator=g, dtype=torch.float64)
    z2 = torch.randn(batch, 3, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 3, (batch,), generator=g)
    labels[0] = 7  # a label of its own: no same-label candidate in the masked forms
    nb = build_neighbourhood(z1, None if form == "single" else z2, form=form, labels=labels)
    kernel = SameLabel().leak(debias) if debias else SameLabel()
    return nb, kernel


@pytest.mark.parametrize("alpha", [0.0, 0.4, 1.0])
@pytest.mark.parametrize("form", ["pair", "symmetric"])
@pytest.mark.parametrize(("rows", "columns"), BLOCKS[1:3])
def test_gradcheck(alpha: float, form: str, rows, columns) -> None:
    """The true derivative in float64, through a generic (Gaussian) kernel's scores."""
    nb, kernel = _case(form, batch=4)
    target = SameFactTarget.of(kernel, nb)
    scores = GaussianEmbedding().scores
    anchors = nb.anchors.detach().clone().requires_grad_()
    candidates = nb.candidates.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, c: streaming_recursive_kl(a, c, scores, target, TAUS, alpha, mask=nb.mask,
                                            block_rows=rows, block_columns=columns),
        (anchors, candidates))


@pytest.mark.parametrize("form", ["pair", "symmetric", "single"])
@pytest.mark.parametrize("learned", [Cosine(0.5), GaussianEmbedding(2.0), StudentT(1.0, 0.7)],
                         ids=["cosine", "gaussian", "student-t"])
@pytest.mark.parametrize(("alpha", "detach"), [(0.0, False), (0.5, False), (0.5, True),
                                               (1.0, False)])
@pytest.mark.parametrize(("rows", "columns"), EQUAL_BLOCKS)
def test_equals_materialised_score_path(form, learned, alpha, detach, rows, columns) -> None:
    """Value and gradient equal softmax_recursive_kl over the full (B, N) scores and the
    kernel's own log p (labels with a leak; one anchor without a same-label candidate)."""
    nb, kernel = _case(form, batch=7, seed=1)
    z = [nb.anchors.detach().clone().requires_grad_(),
         nb.candidates.detach().clone().requires_grad_()]
    expected = softmax_recursive_kl(kernel.log_prob(nb), learned.scores(*z), TAUS, alpha,
                                    mask=nb.mask, detach_teacher=detach)
    grads_expected = torch.autograd.grad(expected, z)
    got = streaming_recursive_kl(*z, learned.scores, SameFactTarget.of(kernel, nb), TAUS, alpha,
                                 mask=nb.mask, detach_teacher=detach, block_rows=rows,
                                 block_columns=columns)
    grads_got = torch.autograd.grad(got, z)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-13)
    for a, b in zip(grads_got, grads_expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


class _Largest(TorchDispatchMode):
    """Records the largest tensor any operation returns."""

    largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for item in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(item, torch.Tensor):
                self.largest = max(self.largest, item.numel())
        return out


@pytest.mark.parametrize(("rows", "columns"), [(4, None), (8, 8)])
def test_no_batch_by_batch_tensor(rows: int, columns) -> None:
    """Forward and backward never make a tensor of B x N entries: the largest holds the
    K + 1 students of one block."""
    batch = 48
    g = torch.Generator().manual_seed(2)
    z1, z2 = (torch.randn(batch, 5, generator=g).requires_grad_() for _ in range(2))
    nb = build_neighbourhood(z1, z2, form="pair")
    target = SameFactTarget.of(Augmentation(), nb)
    with _Largest() as mode:
        value = streaming_recursive_kl(nb.anchors, nb.candidates, Cosine().scores, target,
                                       TAUS, 0.5, block_rows=rows, block_columns=columns)
        value.backward()
    block = rows * (columns or batch)
    assert mode.largest <= len(TAUS) * block < batch * batch
    assert z1.grad is not None and torch.isfinite(z1.grad).all()


@pytest.mark.parametrize("make", [lambda s: RKDOLoss(streaming=s),
                                  lambda s: IConLoss(streaming=s),
                                  lambda s: RKDOLoss(depth=40, alpha=0.9, streaming=s,
                                                     supervisory=SameLabel(), form="symmetric"),
                                  lambda s: IConLoss(supervisory=SameLabel().leak(0.3),
                                                     learned=StudentT(), form="single",
                                                     streaming=s)],
                         ids=["rkdo", "icon", "rkdo-labels-deep", "icon-single"])
def test_loss_flag_gives_the_same_numbers(make) -> None:
    g = torch.Generator().manual_seed(3)
    z = [torch.randn(20, 6, generator=g, dtype=torch.float64).requires_grad_() for _ in "ab"]
    labels = torch.randint(0, 4, (20,), generator=g)
    results = []
    for streaming in (False, True):
        loss = make(streaming)
        views = z[:1] if loss.form == "single" else z
        value = loss(*views, labels=labels)
        results.append((value, torch.autograd.grad(value, views)))
    (v0, g0), (v1, g1) = results
    torch.testing.assert_close(v1, v0, rtol=1e-12, atol=1e-13)
    for a, b in zip(g1, g0, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_automatic_above_the_threshold(monkeypatch) -> None:
    z1, z2 = torch.randn(8, 4, requires_grad=True), torch.randn(8, 4)
    assert "Streaming" not in type(RKDOLoss()(z1, z2).grad_fn).__name__
    monkeypatch.setattr(losses, "STREAMING_ABOVE", 63)
    assert "Streaming" in type(RKDOLoss()(z1, z2).grad_fn).__name__
    assert "Streaming" not in type(RKDOLoss(streaming=False)(z1, z2).grad_fn).__name__
    # kernels the stream cannot make fall back to the materialised path
    knn = IConLoss(supervisory=KNNGraph(k=2))
    assert "Streaming" not in type(knn(z1, z2, inputs=torch.randn(8, 3)).grad_fn).__name__


def test_refused_where_it_cannot_stream() -> None:
    with pytest.raises(ValueError, match="streaming=True needs .* got Cosine and KNNGraph"):
        IConLoss(supervisory=KNNGraph(), streaming=True)
    with pytest.raises(ValueError, match="streaming must be None"):
        RKDOLoss(streaming="yes")
    with pytest.raises(ValueError, match="block sizes"):
        nb, kernel = _case("pair")
        streaming_recursive_kl(nb.anchors, nb.candidates, Cosine().scores,
                               SameFactTarget.of(kernel, nb), TAUS, 0.5, block_rows=0)
