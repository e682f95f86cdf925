"""The checks of a :class:`~rkdo.training.config.TrainConfig` that need more than its fields:
the data (image size vs dataset and encoder), the machine (device, memory) and the loss (its
hyper-parameter ranges, which the loss itself checks when it is built).

Set-up (:func:`rkdo.training.trainer.train`, the floors of :mod:`.components`) calls
:func:`check_settings` once and builds the loss once; :func:`validate` is the same checks plus a
two-sample build of the loss, for callers that want every refusal before any work (the bench
planner, tests). Each error says what to change.
"""

from __future__ import annotations

import dataclasses
import importlib
import math

import torch

from rkdo import distributed, methods
from rkdo._validation import check_choice, check_int, check_positive
from rkdo.fields import MIN_POINTS
from rkdo.training.budget import check_memory
from rkdo.training.config import TrainConfig
from rkdo.training.loss_call import build_loss
from rkdo.vision import data as data_module
from rkdo.vision import models, noise

__all__ = ["MAX_SEED", "check_settings", "validate"]

MAX_SEED = 2**32 - 1
"""The largest seed every generator a run seeds accepts (NumPy's and scikit-learn's)."""


def validate(config: TrainConfig) -> torch.device:
    """Refuse impossible settings before any work starts, the loss's ranges included (by
    building it on two samples); returns the device the run would use."""
    device = check_settings(config)
    build_loss(config, n_samples=2)
    return device


def check_settings(config: TrainConfig) -> torch.device:
    """Every check but the loss's own: declared constraints, numbers, settings that depend on
    each other, images, device and memory. Returns the resolved device."""
    if not (config.dataset in data_module.DATASETS or config.dataset.startswith("imagefolder:")):
        raise ValueError(
            f"unknown dataset {config.dataset!r}; choose one of: "
            f"{', '.join(data_module.DATASETS)}, imagefolder:PATH"
        )
    _check_declared(config)
    _check_numbers(config)
    bad_epochs = [e for e in config.eval_epochs if not 1 <= e <= config.epochs]
    if bad_epochs:
        raise ValueError(f"eval-epochs {bad_epochs} must lie in [1, epochs={config.epochs}]")
    _check_method(config)
    if config.holdout_fraction is not None:
        fraction = float(config.holdout_fraction)
        if not 0.0 < fraction < 1.0:
            raise ValueError(
                f"holdout-fraction must lie in (0, 1), got {config.holdout_fraction!r}")
    _check_images(config)
    _check_loggers(config)
    device = distributed.resolve_device(config.device)
    check_memory(config, device)
    return device


def _check_method(config: TrainConfig) -> None:
    """What the method's registry entry allows: temporal recursion, recording (an outside
    baseline's recursion is refused where its loss is built)."""
    method = config.method_entry()
    recursion = config.resolved_recursion()
    if recursion.startswith("temporal") and method.temporal is None:
        supported = [m.name for m in methods.METHODS.values() if m.temporal is not None]
        raise ValueError(
            f"temporal recursion supports the methods {', '.join(supported[:-1])} and "
            f"{supported[-1]}, not {config.method!r}"
        )
    if config.record_field:
        if method.outside:
            raise ValueError(
                f"--record-field needs one of rkdo's own methods, not {config.method!r}")
        check_int("record-field", config.record_field, low=MIN_POINTS)


def _check_loggers(config: TrainConfig) -> None:
    """The optional loggers' packages, before anything is written (a retry is then the same
    run, not one refused as different)."""
    for wanted, module, extra in ((config.tensorboard, "torch.utils.tensorboard", "tensorboard"),
                                  (config.wandb, "wandb", "wandb")):
        if not wanted:
            continue
        try:
            importlib.import_module(module)
        except ImportError:
            raise ValueError(f"--{extra} needs `pip install rkdo[{extra}]`") from None


def _check_declared(config: TrainConfig) -> None:
    """The constraints in the fields' metadata (choices, lower bounds)."""
    for spec in dataclasses.fields(config):
        value = getattr(config, spec.name)
        if value is None:
            continue
        choices = spec.metadata["choices"]
        if choices is not None:
            check_choice(spec.name.replace("_", " "), value, choices)
        if spec.metadata["at_least"] is not None:
            check_int(spec.name.replace("_", "-"), value, low=spec.metadata["at_least"])


def _check_images(config: TrainConfig) -> None:
    native = data_module.default_image_size(config.dataset)
    size = config.resolved_image_size()
    if size * 2 < native:
        raise ValueError(
            f"image size {size} would throw away most of the {native} px {config.dataset} "
            f"images; use --image-size >= {math.ceil(native / 2)}"
        )
    if size < models.min_image_size(config.encoder):
        raise ValueError(
            f"encoder {config.encoder!r} needs images of at least "
            f"{models.min_image_size(config.encoder)} px, got {size}; choose another --encoder "
            "or a larger --image-size"
        )


def _check_numbers(config: TrainConfig) -> None:
    """Finite floats everywhere (a NaN momentum would train NaN weights), the optimiser's ranges,
    BatchNorm's two samples, and no flag that the chosen recursion would ignore."""
    for spec in dataclasses.fields(config):
        value = getattr(config, spec.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{spec.name.replace('_', '-')} must be a finite number, got {value}")
    if not (isinstance(config.seed, int) and 0 <= config.seed <= MAX_SEED):
        raise ValueError(f"--seed must be an integer in [0, {MAX_SEED}], got {config.seed}")
    check_positive("lr", config.lr)
    check_positive("weight-decay", config.weight_decay, allow_zero=True)
    check_positive("momentum", config.momentum, allow_zero=True)
    if config.batch_size < 2:
        raise ValueError("batch-size must be >= 2: the encoder's BatchNorm layers need at least "
                         f"two samples per batch, got {config.batch_size}")
    if not 0.0 < config.crop_scale <= 1.0:
        raise ValueError(f"crop-scale must lie in (0, 1], got {config.crop_scale}")
    if not 0.0 <= config.jitter <= 2.0:
        raise ValueError(f"jitter must lie in [0, 2] (hue shift up to jitter / 4 <= 0.5), got "
                         f"{config.jitter}")
    if not 0.0 <= config.label_noise < 1.0:
        raise ValueError(f"label-noise must lie in [0, 1), got {config.label_noise}")
    if config.label_noise and config.label_noise_kind == "asymmetric":
        noise.noise_pairs(config.dataset)
    if not 0.0 <= config.ema_momentum < 1.0:
        raise ValueError(f"ema-momentum must lie in [0, 1), got {config.ema_momentum}")
    if config.warmup_steps and config.lr_schedule != "warmup-cosine":
        raise ValueError("--warmup-steps applies to --lr-schedule warmup-cosine only; add it or "
                         "drop --warmup-steps")
    if not config.resolved_recursion().startswith("temporal"):
        ignored = [flag for flag, value, default in (
            ("--alpha-schedule", config.alpha_schedule, "constant"),
            ("--alpha-final", config.alpha_final, 0.0)) if value != default]
        if ignored:
            verb = "apply" if len(ignored) > 1 else "applies"
            raise ValueError(f"{' and '.join(ignored)} {verb} to temporal recursion only; add "
                             "--recursion temporal or drop it")
