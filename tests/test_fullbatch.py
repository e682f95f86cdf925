"""Full-batch RKDO: students, the static target, the recorded losses against numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import rel_entr
from sklearn.datasets import load_digits
from torch import nn

from rkdo.fullbatch import (
    EncoderStudent,
    FreeEmbeddings,
    FreeLogits,
    FullBatchRKDO,
    static_log_prob,
)
from rkdo.kernels import Augmentation, Cosine, GaussianInput, KNNGraph, StudentT


def _log_softmax_masked_numpy(scores, mask):
    scores = np.where(mask, scores, -np.inf)
    top = scores.max(1, keepdims=True)
    return scores - top - np.log(np.exp(scores - top).sum(1, keepdims=True))


def test_free_logits_are_a_masked_softmax():
    n = 6
    mask = ~torch.eye(n, dtype=torch.bool)
    student = FreeLogits(n, mask=mask, seed=3)
    expected = _log_softmax_masked_numpy(student.logits.detach().numpy(), mask.numpy())
    np.testing.assert_allclose(student().detach().numpy(), expected, rtol=1e-12)


def test_free_embeddings_student_t_against_brute_force():
    n = 7
    student = FreeEmbeddings(n, 3, kernel=StudentT(), seed=1)
    z = student.embeddings.detach().numpy()
    q = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i != j:
                q[i, j] = 1.0 / (1.0 + np.sum((z[i] - z[j]) ** 2))
        q[i] /= q[i].sum()
    log_q = student().detach().numpy()
    np.testing.assert_allclose(np.exp(log_q), q, rtol=1e-10)
    assert np.all(np.isneginf(np.diag(log_q)))


def test_encoder_student_equals_free_embeddings_for_the_identity_encoder():
    n = 8
    inputs = torch.randn(n, 3, dtype=torch.float64)
    encoder = EncoderStudent(nn.Identity(), inputs, kernel=Cosine(0.5))
    free = FreeEmbeddings(n, 3, kernel=Cosine(0.5), init=inputs)
    torch.testing.assert_close(encoder(), free())


def test_static_targets():
    x = torch.tensor(load_digits().data[:40])
    log_p = static_log_prob(GaussianInput(5.0), 40, inputs=x)
    entropy = -(log_p.exp() * log_p.masked_fill(torch.isneginf(log_p), 0)).sum(1)
    torch.testing.assert_close(entropy.exp(), torch.full((40,), 5.0, dtype=torch.float64),
                               rtol=1e-4, atol=0)
    assert bool(torch.isneginf(log_p.diagonal()).all())
    knn = static_log_prob(KNNGraph(3), 40, inputs=x).exp()
    d = torch.cdist(x, x) + torch.diag(torch.full((40,), float("inf"), dtype=torch.float64))
    nearest = d.topk(3, largest=False).indices
    expected = torch.zeros(40, 40, dtype=torch.float64).scatter_(1, nearest, 1 / 3)
    torch.testing.assert_close(knn, expected)
    pairs = static_log_prob(Augmentation(), 5, form="pair").exp()
    torch.testing.assert_close(pairs, torch.eye(5, dtype=torch.float64))


def test_records_match_a_numpy_rerun():
    """The teacher is p(t) = (1 - a_t) p(t-1) + a_t q(t-1); the records are KLs of it."""
    n = 12
    g = torch.Generator().manual_seed(0)
    log_p0 = torch.log_softmax(2 * torch.randn(n, n, generator=g, dtype=torch.float64), 1)
    students = []

    def keep_student(t, runner):
        students.append(runner.student().detach().exp().numpy())
        return {"seen": t}

    runner = FullBatchRKDO(FreeLogits(n, seed=5), log_p0, alpha=0.6, schedule="linear",
                           alpha_final=0.2, outer_steps=5, inner="armijo", inner_steps=2)
    history = runner.fit(callback=keep_student).history_
    assert [r["seen"] for r in history] == list(range(6))
    p = log_p0.exp().numpy()
    for t, record in enumerate(history):
        if t > 0:
            alpha = 0.6 + (0.2 - 0.6) * t / 5
            assert record["alpha"] == pytest.approx(alpha)
            previous_q = students[t - 1]
            assert record["previous"] == pytest.approx(rel_entr(p, previous_q).sum(1).mean())
            p = (1 - alpha) * p + alpha * previous_q
            assert record["before"] == pytest.approx(rel_entr(p, previous_q).sum(1).mean())
        assert record["after"] == pytest.approx(rel_entr(p, students[t]).sum(1).mean())
        assert record["static"] == pytest.approx(
            rel_entr(log_p0.exp().numpy(), students[t]).sum(1).mean())
    np.testing.assert_allclose(runner.log_teacher_.exp().numpy(), p, rtol=1e-10)


def test_monotone_guard_undoes_a_step_that_raises_the_loss():
    n = 10
    log_p0 = torch.log_softmax(torch.randn(n, n, dtype=torch.float64), 1)
    wild = dict(alpha=0.3, outer_steps=3, inner="adam", inner_steps=3, lr=50.0)
    guarded = FullBatchRKDO(FreeLogits(n), log_p0, monotone=True, **wild).fit().history_
    unguarded = FullBatchRKDO(FreeLogits(n), log_p0, monotone=False, **wild).fit().history_
    assert all(r["after"] <= r["before"] + 1e-12 for r in guarded)
    assert any(r["after"] > r["before"] for r in unguarded)  # the guard is needed


def test_parametric_encoder_on_digits_lowers_the_static_loss():
    digits = load_digits()
    n = 150
    inputs = torch.tensor(digits.data[:n], dtype=torch.float32) / 16.0
    log_p0 = static_log_prob(KNNGraph(10), n, inputs=inputs).float()
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 16))
    student = EncoderStudent(encoder, inputs, kernel=Cosine(0.5))
    history = FullBatchRKDO(student, log_p0, alpha=0.2, outer_steps=3, inner="adam",
                            inner_steps=15, lr=1e-2).fit().history_
    assert history[-1]["static"] < 0.9 * history[0]["previous"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(inner="newton"), "inner must be one of"),
        (dict(inner_steps=-1), "inner_steps"),
        (dict(lr=0.0), "lr"),
        (dict(alpha=2.0), "alpha"),
        (dict(schedule="exp"), "alpha schedule"),
    ],
)
def test_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FullBatchRKDO(FreeLogits(4), torch.log_softmax(torch.randn(4, 4), 1), **kwargs)


def test_rejects_bad_targets_and_students():
    with pytest.raises(ValueError, match="FreeLogits"):
        FullBatchRKDO(FreeEmbeddings(4, 2), torch.zeros(4, 4), inner="exact")
    with pytest.raises(ValueError, match="square"):
        FullBatchRKDO(FreeLogits(4), torch.zeros(4, 5))
    # p(0) has mass on self-pairs that the single-form student excludes: infinite KL
    with pytest.raises(ValueError, match="infinite KL"):
        FullBatchRKDO(FreeEmbeddings(4, 2), torch.log_softmax(torch.zeros(4, 4), 1)).fit()
