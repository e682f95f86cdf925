"""Label noise: the realised rate and transition pattern are the requested ones, exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rkdo.vision.noise import (
    FASHION_PAIRS,
    corrupt_labels,
    noise_pairs,
    stratified_subset,
    transition_matrix,
)


def _labels(n_per_class: int = 2000, classes: int = 10) -> torch.Tensor:
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    return labels[torch.randperm(labels.numel(), generator=torch.Generator().manual_seed(0))]


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.4, 0.6])
def test_symmetric_rate_is_exact_and_flips_go_to_other_classes(rate: float) -> None:
    clean = _labels()
    noisy = corrupt_labels(clean, rate, "symmetric", seed=5)
    changed = noisy != clean
    assert int(changed.sum()) == round(rate * clean.numel())
    assert noisy.min() >= 0 and noisy.max() <= 9
    if rate:
        # off-diagonal mass is uniform: each of the 9 other classes gets about rate / 9
        t = transition_matrix(clean, noisy, 10).numpy()
        off = t[~np.eye(10, dtype=bool)]
        assert np.allclose(np.diag(t), 1 - rate, atol=0.03)
        assert np.allclose(off, rate / 9, atol=0.025)  # about 4 binomial sd at n_c = 2000


@pytest.mark.parametrize("rate", [0.2, 0.4])
def test_asymmetric_flips_exactly_the_pairs(rate: float) -> None:
    clean = _labels(n_per_class=1000)
    noisy = corrupt_labels(clean, rate, "asymmetric", seed=1)
    expected = np.eye(10)
    for a, b in FASHION_PAIRS:
        for s, t in ((a, b), (b, a)):
            expected[s, s], expected[s, t] = 1 - rate, rate
    assert np.array_equal(transition_matrix(clean, noisy, 10).numpy(), expected)
    assert float((noisy != clean).double().mean()) == pytest.approx(0.6 * rate)


def test_noise_is_seeded() -> None:
    clean = _labels(200)
    a = corrupt_labels(clean, 0.4, seed=3)
    assert torch.equal(a, corrupt_labels(clean, 0.4, seed=3))
    assert not torch.equal(a, corrupt_labels(clean, 0.4, seed=4))
    assert torch.equal(clean, _labels(200))  # the input is not changed


def test_bad_requests_are_refused() -> None:
    with pytest.raises(ValueError, match="rate must lie in"):
        corrupt_labels(_labels(10), 1.0)
    with pytest.raises(ValueError, match="kind must be one of"):
        corrupt_labels(_labels(10), 0.2, "pairwise")
    with pytest.raises(ValueError, match="use --label-noise-kind symmetric"):
        noise_pairs("cifar10")


def test_stratified_subset_keeps_class_shares() -> None:
    labels = torch.cat([torch.zeros(600), torch.ones(300), torch.full((100,), 2)]).long()
    chosen = stratified_subset(labels, 100, seed=0)
    assert chosen.numel() == 100 and chosen.unique().numel() == 100
    assert torch.bincount(labels[chosen]).tolist() == [60, 30, 10]
    assert torch.equal(chosen, stratified_subset(labels, 100, seed=0))
