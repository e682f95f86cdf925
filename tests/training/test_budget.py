"""The memory estimate: it scales as the formula says and only refuses what cannot fit."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from rkdo.training import TrainConfig, budget


def test_the_estimate_follows_the_formula(fast: TrainConfig) -> None:
    small = budget.estimate_bytes(replace(fast, batch_size=64))
    assert small["dataset"] == 1797 * 8 * 8  # digits: uint8, one channel, 8 px
    assert small["step"] == 2 * 64 * 8 * 8 * 4 * 125 * 3 // 2
    larger = budget.estimate_bytes(replace(fast, batch_size=64, image_size=16))
    assert larger["step"] == 4 * small["step"]  # quadratic in the side
    assert budget.estimate_bytes(replace(fast, batch_size=64), world=2)["step"] == \
        small["step"] // 2  # each process holds its share of the batch


def test_only_what_cannot_fit_is_refused(fast: TrainConfig, monkeypatch) -> None:
    monkeypatch.setattr(budget, "available_bytes", lambda device: 10**9)
    budget.check_memory(replace(fast, image_size=64), torch.device("cpu"))
    with pytest.raises(ValueError, match=r"needs an estimated .* GB of memory .*1.0 GB is "
                                         r"available; lower --image-size or --batch-size"):
        budget.check_memory(replace(fast, image_size=400), torch.device("cpu"))
    monkeypatch.setattr(budget, "available_bytes", lambda device: None)
    # unknown: no guess either way
    budget.check_memory(replace(fast, image_size=400), torch.device("cpu"))
