"""Shared by the training tests: a config that trains in about a second on digits."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from rkdo.training import TrainConfig


@pytest.fixture
def fast() -> TrainConfig:
    """rkdo on digits with a small CNN: 2 epochs of 4 steps of 32 images, no evaluation."""
    return TrainConfig(
        dataset="digits", encoder="small-cnn", method="rkdo", epochs=2, steps_per_epoch=4,
        batch_size=32, embedding_dim=16, hidden_dim=32, eval_protocol="none", log_every=1,
        seed=3,
    )


@pytest.fixture
def train_lines() -> Callable[[Path], list[dict]]:
    """A run's metrics.jsonl records without the timing fields (they differ between runs)."""

    def read(run: Path) -> list[dict]:
        lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        for line in lines:
            line.pop("images_per_s", None)
            line.pop("eval_seconds", None)
        return lines

    return read
