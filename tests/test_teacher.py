"""The temporal teacher field: I-Con at alpha = 0, a brute-force reference, storage."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from rkdo import IConLoss, RKDOLoss
from rkdo.kernels import SameLabel
from rkdo.teacher import TemporalRKDOLoss

# -- alpha = 0 is I-Con ----------------------------------------------------------------------


def _batch(n, size, dim=6, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    index = torch.randperm(n, generator=g)[:size]
    z1 = torch.randn(size, dim, generator=g, dtype=dtype)
    z2 = torch.randn(size, dim, generator=g, dtype=dtype)
    return z1, z2, index


@pytest.mark.parametrize("storage", ["dense", "topk"])
def test_alpha_zero_is_icon_augmentation(storage):
    n = 40
    loss = TemporalRKDOLoss(n, alpha=0.0, beta=0.0, debias=0.2, storage=storage, topk=5)
    reference = IConLoss(temperature=0.5, debias=0.2)
    before = {k: v.clone() for k, v in loss.state_dict().items()}
    for step in range(4):
        z1, z2, index = _batch(n, 12, seed=step)
        z1.requires_grad_(True)
        ours = loss(z1, z2, index=index, step=step)
        (grad_ours,) = torch.autograd.grad(ours, z1)
        theirs = reference(z1, z2)
        (grad_theirs,) = torch.autograd.grad(theirs, z1)
        assert ours.item() == pytest.approx(theirs.item(), rel=1e-12, abs=1e-12)
        torch.testing.assert_close(grad_ours, grad_theirs)
    for k, v in loss.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_alpha_zero_is_icon_labels():
    n = 40
    g = torch.Generator().manual_seed(3)
    labels_all = torch.randint(0, 4, (n,), generator=g)
    loss = TemporalRKDOLoss(n, alpha=0.0, beta=0.0, debias=0.1, supervisory="labels")
    reference = IConLoss(SameLabel(), temperature=0.5, debias=0.1)
    for step in range(3):
        z1, z2, index = _batch(n, 16, seed=10 + step)
        ours = loss(z1, z2, index=index, step=step, labels=labels_all[index])
        theirs = reference(z1, z2, labels=labels_all[index])
        assert ours.item() == pytest.approx(theirs.item(), rel=1e-12)


def test_temperature_follows_the_temporal_schedule():
    n = 30
    loss = TemporalRKDOLoss(n, alpha=0.0, beta=0.2, total_steps=10, temperature=0.5)
    z1, z2, index = _batch(n, 10, seed=4)
    for step in (0, 5, 10):
        tau = 0.5 * (1 - 0.2 * step / 10)
        expected = IConLoss(temperature=tau, debias=0.0)(z1, z2)
        assert loss(z1, z2, index=index, step=step).item() == pytest.approx(expected.item())


def test_in_step_on_top_of_alpha_zero_is_rkdo():
    n = 30
    in_step = RKDOLoss(alpha=0.5, depth=3, beta=0.1)
    loss = TemporalRKDOLoss(n, alpha=0.0, beta=0.0, debias=0.2, in_step=in_step)
    reference = RKDOLoss(alpha=0.5, depth=3, beta=0.1, temperature=0.5, debias=0.2)
    z1, z2, index = _batch(n, 10, seed=5)
    z1.requires_grad_(True)
    ours = loss(z1, z2, index=index, step=0)
    theirs = reference(z1, z2)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-12)
    torch.testing.assert_close(torch.autograd.grad(ours, z1)[0],
                               torch.autograd.grad(theirs, z1)[0])


# -- a brute-force reference of the field ----------------------------------------------------


class ReferenceField:
    """Per-sample loops in numpy, float64: the module docstring's rules, written plainly."""

    def __init__(self, n, labels=None):
        if labels is None:
            self.p = np.eye(n)
        else:
            labels = np.asarray(labels)
            same = (labels[:, None] == labels[None, :]).astype(float)
            self.p = same / same.sum(1, keepdims=True)

    def step(self, z1, z2, index, *, alpha, tau, debias):
        z1 = z1 / np.linalg.norm(z1, axis=1, keepdims=True)
        z2 = z2 / np.linalg.norm(z2, axis=1, keepdims=True)
        scores = z1 @ z2.T / tau
        log_q = scores - np.log(np.exp(scores).sum(1, keepdims=True))
        size = len(index)
        copies = {i: list(index).count(i) for i in index}
        total = 0.0
        for b in range(size):
            row = np.array([self.p[index[b], index[c]] / copies[index[c]] for c in range(size)])
            target = (1 - debias) * row / row.sum() + debias / size
            keep = target > 0
            total += np.sum(target[keep] * (np.log(target[keep]) - log_q[b][keep]))
        q = np.exp(log_q)
        new_rows = {}
        for i in set(index.tolist()):
            anchors = [b for b in range(size) if index[b] == i]
            student = q[anchors].mean(0)
            spread = np.zeros(self.p.shape[1])
            for c in range(size):
                spread[index[c]] += student[c]
            new_rows[i] = (1 - alpha) * self.p[i] + alpha * spread
        for i, row in new_rows.items():
            self.p[i] = row
        return total / size


@pytest.mark.parametrize("supervisory", ["augmentation", "labels"])
@pytest.mark.parametrize("storage", ["dense", "topk"])
def test_field_matches_brute_force_reference(supervisory, storage):
    n, size = 24, 9
    g = torch.Generator().manual_seed(7)
    labels_all = torch.randint(0, 3, (n,), generator=g)
    labels = labels_all if supervisory == "labels" else None
    # top-k with k = n keeps every entry: it must be exact
    loss = TemporalRKDOLoss(n, alpha=0.6, schedule="linear", alpha_final=0.1, total_steps=6,
                            beta=0.1, debias=0.15, supervisory=supervisory, storage=storage,
                            topk=n, labels=labels)
    reference = ReferenceField(n, None if labels is None else labels_all.numpy())
    for step in range(6):
        z1, z2, index = _batch(n, size, seed=20 + step, dtype=torch.float32)
        if step == 3:  # a repeated sample: two anchors, two candidate copies
            index[1] = index[0]
        kwargs = {"labels": labels_all[index]} if labels is not None else {}
        ours = loss(z1, z2, index=index, step=step, **kwargs)
        expected = reference.step(z1.double().numpy(), z2.double().numpy(), index.numpy(),
                                  alpha=loss.alpha_at(step), tau=loss.temperature_at(step),
                                  debias=0.15)
        assert ours.item() == pytest.approx(expected, rel=1e-5)
        rows = loss.rows(torch.arange(n)).double().numpy()
        np.testing.assert_allclose(rows, reference.p, atol=1e-6)
        np.testing.assert_allclose(rows.sum(1), 1.0, atol=1e-6)


def test_labels_counted_as_seen_without_dataset_labels():
    n = 20
    labels_all = torch.arange(n) % 2
    loss = TemporalRKDOLoss(n, alpha=0.5, supervisory="labels")
    z1, z2, _ = _batch(n, n, seed=1, dtype=torch.float32)
    loss(z1, z2, index=torch.arange(n), step=0, labels=labels_all)
    torch.testing.assert_close(loss.class_counts[:2], torch.tensor([10.0, 10.0]))
    assert torch.equal(loss.sample_labels, labels_all)


# -- top-k storage ---------------------------------------------------------------------------


def test_topk_keeps_the_largest_entries_and_leaks_the_rest():
    n, size, k, alpha = 50, 16, 4, 0.5
    dense = TemporalRKDOLoss(n, alpha=alpha, beta=0.0, storage="dense")
    sparse = TemporalRKDOLoss(n, alpha=alpha, beta=0.0, storage="topk", topk=k)
    z1, z2, index = _batch(n, size, seed=2, dtype=torch.float32)
    dense(z1, z2, index=index, step=0)
    sparse(z1, z2, index=index, step=0)
    # after one update the explicit part of row i is alpha q~(.|i); top-k keeps its k largest
    explicit = dense.explicit[index]
    largest = explicit.topk(k, dim=1).values
    torch.testing.assert_close(sparse.sparse_value[index].sort(1, descending=True).values,
                               largest)
    torch.testing.assert_close(sparse.leak[index], alpha - largest.sum(1))
    stored = sparse.sparse_index[index].long()
    torch.testing.assert_close(explicit.gather(1, stored), sparse.sparse_value[index])
    rows = sparse.rows(torch.arange(n))
    torch.testing.assert_close(rows.sum(1), torch.ones(n))
    # many more steps: rows stay distributions, entries non-negative
    for step in range(1, 30):
        z1, z2, index = _batch(n, size, seed=100 + step, dtype=torch.float32)
        sparse(z1, z2, index=index, step=step)
    rows = sparse.rows(torch.arange(n))
    torch.testing.assert_close(rows.sum(1), torch.ones(n))
    assert bool((rows >= 0).all())


def test_storage_choice_and_memory_budget():
    small = TemporalRKDOLoss(1797)
    assert small.storage == "dense"
    assert small.memory_bytes() == 1797 * 1797 * 4 + 1797 * 4
    half = TemporalRKDOLoss(1797, dtype=torch.bfloat16)
    assert half.memory_bytes() == 1797 * 1797 * 2 + 1797 * 4
    large = TemporalRKDOLoss(60_000, topk=64)
    assert large.storage == "topk"
    assert large.memory_bytes() == 60_000 * 64 * 8 + 60_000 * 8
    assert large.memory_bytes() <= 1024 * 2**20
    with pytest.raises(ValueError, match="memory_budget_mb"):
        TemporalRKDOLoss(60_000, storage="dense")
    with pytest.raises(ValueError, match="memory_budget_mb"):
        TemporalRKDOLoss(60_000, topk=4096, memory_budget_mb=1024)


# -- checkpoints, modes, validation ----------------------------------------------------------


@pytest.mark.parametrize("storage", ["dense", "topk"])
def test_state_dict_round_trip(storage):
    n = 30

    def make():
        return TemporalRKDOLoss(n, alpha=0.5, storage=storage, topk=6, total_steps=10)

    loss = make()
    for step in range(3):
        z1, z2, index = _batch(n, 10, seed=step, dtype=torch.float32)
        loss(z1, z2, index=index, step=step)
    buffer = io.BytesIO()
    torch.save(loss.state_dict(), buffer)
    buffer.seek(0)
    restored = make()
    restored.load_state_dict(torch.load(buffer))
    for (name, a), (_, b) in zip(loss.state_dict().items(), restored.state_dict().items(),
                                 strict=True):
        assert torch.equal(a, b), name
    z1, z2, index = _batch(n, 10, seed=9, dtype=torch.float32)
    assert loss(z1, z2, index=index, step=3).item() == restored(z1, z2, index=index,
                                                                step=3).item()
    # the whole module pickles too (schedules are objects, not closures)
    torch.save(loss, io.BytesIO())


def test_eval_mode_reads_without_writing():
    n = 20
    loss = TemporalRKDOLoss(n, alpha=0.9).eval()
    z1, z2, index = _batch(n, 8, dtype=torch.float32)
    loss(z1, z2, index=index, step=0)
    assert torch.equal(loss.explicit, torch.zeros(n, n))
    loss.train()
    loss(z1, z2, index=index, step=0)
    assert loss.explicit.sum().item() == pytest.approx(0.9 * 8, rel=1e-5)


def test_the_target_is_the_teacher_of_the_previous_visit():
    # alpha = 1: after one visit the teacher row is the student's row; a second identical batch
    # has target = previous student = current student, so the loss is zero
    n = 12
    loss = TemporalRKDOLoss(n, alpha=1.0, beta=0.0)
    z1, z2, _ = _batch(n, n, dtype=torch.float32)
    index = torch.arange(n)
    assert loss(z1, z2, index=index, step=0).item() > 0.1
    assert loss(z1, z2, index=index, step=1).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(storage="sparse"), "storage must be one of"),
        (dict(supervisory="kmeans"), "supervisory must be one of"),
        (dict(schedule="exp"), "alpha schedule must be one of"),
        (dict(topk=0), "topk"),
        (dict(debias=1.0), "debias"),
        (dict(dtype=torch.float64), "dtype"),
        (dict(in_step=IConLoss()), "in_step"),
        (dict(labels=torch.zeros(10, dtype=torch.long)), "labels= is only used"),
    ],
)
def test_constructor_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TemporalRKDOLoss(10, **kwargs)


def test_forward_rejects_bad_input():
    loss = TemporalRKDOLoss(10, supervisory="labels")
    z1, z2, index = _batch(10, 4, dtype=torch.float32)
    with pytest.raises(ValueError, match="labels="):
        loss(z1, z2, index=index, step=0)
    with pytest.raises(ValueError, match="index must be"):
        loss(z1, z2, index=index[:3], step=0, labels=torch.zeros(4, dtype=torch.long))
