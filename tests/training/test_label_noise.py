"""Training with label noise: recorded in config.json, the training split only, each new loss."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from rkdo.training import TrainConfig, train
from rkdo.training.components import Components, noisy_training_split
from rkdo.vision import data as data_module


def test_noise_touches_the_training_labels_only() -> None:
    config = TrainConfig(dataset="digits", label_noise=0.4, train_size=1000, seed=2)
    loaded = data_module.load("digits")
    data, clean = noisy_training_split(loaded, config)
    assert torch.equal(data.test.images, loaded.test.images)
    assert torch.equal(data.test.labels, loaded.test.labels)
    assert len(data.train) == 1000
    assert int((data.train.labels != clean).sum()) == 400
    again, _ = noisy_training_split(loaded, replace(config, method="supcon"))
    assert torch.equal(again.train.labels, data.train.labels)  # same seed, same noise
    other, _ = noisy_training_split(loaded, replace(config, seed=3))
    assert torch.equal(other.train.images, data.train.images)  # the subset is fixed
    assert not torch.equal(other.train.labels, data.train.labels)


@pytest.mark.parametrize(("method", "extra"), [
    ("supcon-ema", {"alpha": 0.5, "ema_momentum": 0.9}),
    ("ce-bootstrap-hard", {"alpha": 0.2}),
])
def test_new_losses_train_and_report(tmp_path: Path, fast: TrainConfig, method: str,
                                     extra: dict) -> None:
    config = replace(fast, method=method, label_noise=0.2, eval_protocol="noisy",
                     probe_train_size=100, **extra)
    result = train(config, tmp_path / "run", progress=False)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["label_noise"] == 0.2 and saved["label_noise_kind"] == "symmetric"
    assert result["label_noise_share"] == pytest.approx(0.2, abs=1e-3)
    assert ("head_acc" in result) == method.startswith("ce")
    parts = Components(config, torch.device("cpu"))
    assert all(p in {*parts.model.parameters(), *parts.loss.parameters()}
               for group in parts.optimizer.param_groups for p in group["params"])


def test_bad_noise_settings_are_refused() -> None:
    from rkdo.training import validate

    with pytest.raises(ValueError, match="label-noise must lie in"):
        validate(TrainConfig(label_noise=1.0))
    with pytest.raises(ValueError, match="use --label-noise-kind symmetric"):
        validate(TrainConfig(dataset="digits", label_noise=0.2, label_noise_kind="asymmetric"))
    with pytest.raises(ValueError, match="has its own teacher"):
        validate(TrainConfig(method="ce", recursion="in-step"))
