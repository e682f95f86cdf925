"""The run configuration: field metadata, derived field lists, identity, validation."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, replace

import pytest

from rkdo.training import (
    EXECUTION_FIELDS,
    GROUPS,
    LOSS_FIELDS,
    TrainConfig,
    config_identity,
    validate,
)


def test_every_field_says_its_group_and_help() -> None:
    for spec in dataclasses.fields(TrainConfig):
        assert spec.metadata["group"] in GROUPS, spec.name
        assert len(spec.metadata["help"]) > 5, spec.name


def test_the_derived_field_lists_are_the_stored_ones() -> None:
    # the bench store and docs/results/store were written with these lists (csv and wandb came
    # later: execution fields are dropped from a run's identity, so old stores still match)
    assert EXECUTION_FIELDS == ("data_root", "download", "device", "checkpoint_every",
                                "log_every", "tensorboard", "csv", "wandb")
    assert LOSS_FIELDS == ("method", "recursion", "temperature", "alpha", "depth", "beta",
                           "debias", "detach_teacher", "form", "perplexity", "n_clusters")


@pytest.mark.parametrize("missing", ["alpha_final", "eval_projection", "record_every", "csv",
                                     "wandb"])
def test_a_stored_config_without_a_newer_field_keeps_its_identity(missing: str) -> None:
    config = TrainConfig(method="icon", epochs=3)
    stored = asdict(config)
    del stored[missing]  # as written before the field existed (it then had its default)
    assert config_identity(stored) == config_identity(asdict(config))
    assert TrainConfig.from_dict(stored) == config


def test_identity_ignores_execution_fields_only() -> None:
    base = asdict(TrainConfig())
    assert config_identity({**base, "device": "cuda", "log_every": 3}) == config_identity(base)
    assert config_identity({**base, "alpha": 0.3}) != config_identity(base)
    assert not set(EXECUTION_FIELDS) & set(config_identity(base))


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown config keys \['alhpa'\]"):
        TrainConfig.from_dict({"alhpa": 0.3})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dataset": "mnist"}, "unknown dataset 'mnist'; choose one of: digits"),
        ({"encoder": "vit"}, "unknown encoder 'vit'; choose one of: resnet18"),
        ({"method": "byol"}, "unknown method 'byol'; choose one of: simclr"),
        ({"alpha": 1.5}, r"alpha must lie in \[0, 1\]"),
        ({"temperature": 0.0}, "temperature must be a finite number > 0"),
        ({"eval_epochs": [3]}, r"eval-epochs \[3\] must lie in \[1, epochs=2\]"),
        ({"method": "tsne", "recursion": "temporal"}, "temporal recursion supports"),
        ({"dataset": "stl10", "image_size": 28}, "image size 28 would throw away most of the 64"),
        ({"encoder": "resnet18"}, "encoder 'resnet18' needs images of at least 16 px, got 8"),
        ({"lr_schedule": "step"}, "unknown lr schedule 'step'; choose one of: none, cosine"),
        ({"batch_size": 0}, "batch-size must be an integer >= 1, got 0"),
        ({"steps_per_epoch": 0}, "steps-per-epoch must be an integer >= 1"),
        ({"checkpoint_every": -1}, "checkpoint-every must be an integer >= 0"),
        ({"lr": 0.0}, "lr must be a finite number > 0"),
        ({"record_field": 3}, "record-field must be an integer >= 4"),
        ({"method": "lightly-ntxent", "record_field": 6}, "--record-field needs one of rkdo's"),
    ],
)
def test_bad_settings_are_refused_before_any_work(
    change: dict, message: str, fast: TrainConfig
) -> None:
    with pytest.raises(ValueError, match=message):
        validate(replace(fast, **change))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dataset": "fashion-mnist", "image_size": 4000},
         r"--image-size 4000 .* needs an estimated .* [GT]B of memory .* lower --image-size"),
        ({"image_size": 100000}, r"--image-size 100000 .* needs an estimated"),
        ({"image_size": 0}, "image-size must be an integer >= 1, got 0"),
        ({"method": "cluster", "n_clusters": 0}, "n-clusters must be an integer >= 2, got 0"),
        ({"alpha_schedule": "bogus"}, "unknown alpha schedule 'bogus'; choose one of"),
        ({"alpha_schedule": "cosine"}, "--alpha-schedule applies to temporal recursion only"),
        ({"lr": float("inf")}, "lr must be a finite number, got inf"),
        ({"optimizer": "sgd", "momentum": float("nan")}, "momentum must be a finite number"),
        ({"momentum": -0.5}, "momentum must be a finite number >= 0"),
        ({"batch_size": 1}, "batch-size must be >= 2: the encoder's BatchNorm"),
        ({"device": "tpu"}, "unknown device 'tpu'; choose auto, cpu, cuda or cuda:N"),
    ],
)
def test_more_bad_settings_are_refused_before_any_work(
    change: dict, message: str, fast: TrainConfig
) -> None:
    with pytest.raises(ValueError, match=message):
        validate(replace(fast, **change))


def test_a_missing_gpu_is_refused_up_front(fast: TrainConfig) -> None:
    import torch

    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="this machine has"):
            validate(replace(fast, device=f"cuda:{torch.cuda.device_count()}"))
    else:
        with pytest.raises(ValueError, match="no CUDA device is available; use --device cpu"):
            validate(replace(fast, device="cuda"))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"lr": "0.001"}, r"lr must be a number, got '0.001' \(str\)"),
        ({"epochs": "1"}, r"epochs must be an integer, got '1' \(str\)"),
        ({"seed": None}, r"seed must be an integer, got None"),
        ({"epochs": 2.0}, r"epochs must be an integer, got 2.0"),
        ({"download": 1}, r"download must be true or false, got 1"),
        ({"eval_epochs": ["1"]}, r"eval_epochs must be a list of integers"),
        ({"image_size": "8"}, r"image_size must be an integer or null, got '8'"),
    ],
)
def test_stored_values_of_the_wrong_type_are_refused(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict(values)
    # JSON numbers are fine where a float is declared; null where a value is optional
    assert TrainConfig.from_dict({"alpha": 1, "image_size": None}).alpha == 1
