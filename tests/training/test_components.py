"""What a config builds: the validation split, the warm-up + cosine schedule, the augmentation
knobs, the encoder width, and the two ways of running both views through the encoder."""

from __future__ import annotations

import math
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

from rkdo.training import TrainConfig, train, validate
from rkdo.training.components import Components, validation_splits
from rkdo.vision import data as data_module


def test_the_validation_split_is_carved_from_train_and_the_same_for_every_seed() -> None:
    data = data_module.load("digits")
    a = validation_splits(data, 300)
    b = Components(TrainConfig(validation_size=300, seed=7), torch.device("cpu")).data
    assert len(a.train) == len(data.train) - 300 and len(a.test) == 300
    assert torch.equal(a.test.images, b.test.images) and torch.equal(a.train.labels, b.train.labels)
    rows = {bytes(x.numpy()) for x in data.train.images}
    assert all(bytes(x.numpy()) in rows for x in a.test.images)  # never the test split
    joined = torch.cat((a.train.images, a.test.images)).flatten(1)
    assert torch.equal(joined.unique(dim=0), data.train.images.flatten(1).unique(dim=0))
    with pytest.raises(ValueError, match="validation size"):
        validation_splits(data, len(data.train))


def test_warmup_cosine_follows_its_closed_form() -> None:
    config = TrainConfig(epochs=2, steps_per_epoch=10, batch_size=32, lr=0.1,
                         lr_schedule="warmup-cosine", warmup_steps=4)
    parts = Components(config, torch.device("cpu"))
    seen = []
    for _ in range(parts.total_steps):
        seen.append(parts.scheduler.get_last_lr()[0])
        parts.optimizer.step()
        parts.scheduler.step()
    total, warmup = 20, 4
    expected = [0.1 * (t + 1) / warmup if t < warmup else
                0.05 * (1 + math.cos(math.pi * (t - warmup) / (total - warmup)))
                for t in range(total)]
    assert seen == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="warmup-cosine only"):
        validate(TrainConfig(warmup_steps=4))


def test_augmentation_knobs_and_width_reach_the_components() -> None:
    config = TrainConfig(crop_scale=0.5, jitter=0.8, width=8, hidden_dim=32)
    parts = Components(config, torch.device("cpu"))
    assert parts.augment.scale == (0.5, 1.0)
    assert parts.augment.jitter == (0.8, 0.8, 0.8, 0.2)
    assert parts.model.feature_dim == 64
    default = Components(TrainConfig(hidden_dim=32), torch.device("cpu"))
    assert default.augment.scale == (0.2, 1.0) and default.augment.jitter == (0.4, 0.4, 0.4, 0.1)
    assert default.model.feature_dim == 128
    for bad in ({"crop_scale": 0.0}, {"jitter": 2.5}, {"views_forward": "both"}):
        with pytest.raises(ValueError):
            validate(TrainConfig(**bad))


def test_a_stored_config_without_views_forward_means_two_forwards() -> None:
    stored = asdict(TrainConfig())
    del stored["views_forward"], stored["compile"]
    old = TrainConfig.from_dict(stored)
    assert old.views_forward == "separate" and old.compile is False
    assert TrainConfig().views_forward == "joint"


def test_joint_and_separate_forwards_differ_only_in_the_batch_statistics(
    tmp_path: Path, fast: TrainConfig,
) -> None:
    """One step from the same weights and views: BatchNorm's running mean takes one update from
    the 2B joint batch, two (momentum 0.1) from the separate views, so they differ."""
    config = replace(fast, epochs=1, steps_per_epoch=1)
    weights = {}
    for mode in ("joint", "separate"):
        train(replace(config, views_forward=mode), tmp_path / mode, progress=False)
        weights[mode] = torch.load(tmp_path / mode / "checkpoint.pt", weights_only=True)["model"]
    key = "backbone.1.running_mean"
    assert not torch.allclose(weights["joint"][key], weights["separate"][key])
    assert weights["joint"]["backbone.1.num_batches_tracked"] == 1
    assert weights["separate"]["backbone.1.num_batches_tracked"] == 2


def test_compile_trains_to_the_same_loss(tmp_path: Path, fast: TrainConfig, train_lines) -> None:
    pytest.importorskip("torch._dynamo")
    config = replace(fast, epochs=1, steps_per_epoch=2)
    train(config, tmp_path / "eager", progress=False)
    train(replace(config, compile=True), tmp_path / "compiled", progress=False)
    eager = [line["loss"] for line in train_lines(tmp_path / "eager") if "loss" in line]
    compiled = [line["loss"] for line in train_lines(tmp_path / "compiled") if "loss" in line]
    assert compiled == pytest.approx(eager, rel=1e-4, abs=1e-5)


def test_the_raw_pixel_floor_is_a_logistic_regression_on_the_flattened_images(
    fast: TrainConfig,
) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from rkdo.training import evaluate_initial, evaluate_pixels

    config = replace(fast, eval_protocol="full")
    pixels = evaluate_pixels(config)
    data = Components(config, torch.device("cpu")).data

    def flat(images: torch.Tensor) -> torch.Tensor:  # uint8 -> [-1, 1], one row per image
        return (images.double() / 255 * 2 - 1).reshape(len(images), -1).numpy()

    scaler = StandardScaler().fit(flat(data.train.images))
    reference = LogisticRegression(max_iter=1000, random_state=config.seed).fit(
        scaler.transform(flat(data.train.images)), data.train.labels.numpy())
    expected = reference.score(scaler.transform(flat(data.test.images)), data.test.labels.numpy())
    assert pixels["linear_probe"] == pytest.approx(expected, abs=2 / len(data.test.labels))
    assert pixels["linear_probe"] > 0.9  # digits' pixels are nearly linearly separable
    untrained = evaluate_initial(config)
    assert pixels["knn_acc_20"] != untrained["knn_acc_20"]
