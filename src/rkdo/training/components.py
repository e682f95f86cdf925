"""What a config builds before the first step: data, encoder, loss, optimiser, augmentation.

For a config on a training split of ``n`` images and ``W`` processes:

    steps per epoch   S = min(steps_per_epoch, floor(n / batch_size))
    total steps       T = S * epochs
    local batch       batch_size / W                  (each process's share of a step)

The encoder is initialised from ``torch.manual_seed(seed)``, so a run, its resume and its
untrained floor (:func:`evaluate_initial`) start from the same weights.

With ``validation_size = V`` the training split is permuted with a fixed seed
(:data:`VALIDATION_SEED`, the same for every run, so candidates are scored on the same images):
the last ``V`` images of the permutation become the evaluation split and the test split is not
touched. The ``warmup-cosine`` learning rate at step ``t`` of ``T`` with ``W`` warm-up steps is

    lr(t) = lr (t + 1) / W                                         t < W
    lr(t) = lr (1 + cos(pi (t - W) / (T - W))) / 2                 t >= W
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DistributedSampler

from rkdo.evaluation import evaluate
from rkdo.evaluation.noisy import evaluate_noisy
from rkdo.training.checks import check_settings
from rkdo.training.config import TrainConfig
from rkdo.training.loss_call import LossCall, build_loss
from rkdo.vision import data as data_module
from rkdo.vision import noise
from rkdo.vision.augment import TwoViews
from rkdo.vision.models import RawPixels, build_model
from rkdo.vision.splits import DatasetSplits, ImageData

__all__ = ["Components", "VALIDATION_SEED", "evaluate_initial", "evaluate_pixels",
           "evaluate_parts", "validation_splits", "build_augment", "noisy_training_split"]

VALIDATION_SEED = 20261201
"""Seed of the permutation that carves the validation split (fixed: independent of ``seed``)."""


class Components:
    """Model, loss (and its :class:`LossCall`), optimiser, data and augmentation for a config
    that has passed :func:`~rkdo.training.checks.check_settings`; the loss is built here, once
    (its hyper-parameter ranges are checked as it is built)."""

    def __init__(self, config: TrainConfig, device: torch.device, world: int = 1, *,
                 adapt_batch_size: bool = False) -> None:
        self.data = data_module.load(config.dataset, config.data_root, config.download,
                                      holdout_fraction=config.holdout_fraction)
        if config.validation_size:
            self.data = validation_splits(self.data, config.validation_size)
        # the training split as trained on (maybe subsampled, maybe with noisy labels) and its
        # clean labels, which only the noisy-label evaluation reads
        self.data, self.clean_train_labels = noisy_training_split(self.data, config)
        self.image_size = config.resolved_image_size()
        n_train = len(self.data.train)
        self.batch_size = config.batch_size
        if adapt_batch_size and config.batch_size > n_train >= 2 * world:
            # a default batch larger than a small training split: the whole split, as the
            # evaluation adapts its sizes (the caller records it in config.json)
            self.batch_size = n_train - n_train % world
            config = replace(config, batch_size=self.batch_size)
        if config.batch_size > n_train:
            raise ValueError(
                f"batch size {config.batch_size} is larger than the {config.dataset} training "
                f"split ({n_train} samples); use --batch-size <= {n_train}"
            )
        if config.batch_size % world:
            raise ValueError(
                f"batch size {config.batch_size} must be divisible by the {world} processes"
            )
        self.local_batch = config.batch_size // world
        full_epoch = n_train // config.batch_size
        self.steps_per_epoch = min(config.steps_per_epoch or full_epoch, full_epoch)
        self.total_steps = self.steps_per_epoch * config.epochs
        torch.manual_seed(config.seed)
        self.model = build_model(
            config.encoder,
            in_channels=self.data.channels,
            image_size=self.image_size,
            embedding_dim=config.embedding_dim,
            hidden_dim=config.hidden_dim,
            width=config.width,
        ).to(device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.loss = build_loss(config, n_train, self.total_steps).to(device)
        attach = getattr(self.loss, "attach", None)
        if attach is not None:  # a head or an EMA teacher, made before the optimiser
            attach(model=self.model, num_classes=len(self.data.classes))
        self.loss_call = LossCall.for_config(self.loss, config)
        self.augment = build_augment(config, self.image_size, self.data.channels)
        self.optimizer = _optimizer(config, [*self.model.parameters(), *self.loss.parameters()])
        self.scheduler = _scheduler(config, self.optimizer, self.total_steps)

    def batches(self, sampler: DistributedSampler, start_step: int, epochs: int
                ) -> Iterator[tuple[int, Tensor]]:
        """``(step, sample indices)`` of this process from ``start_step`` on; each epoch's order
        from ``sampler`` (``local_batch`` indices a step, ``steps_per_epoch`` steps an epoch)."""
        steps = self.steps_per_epoch
        first_epoch = start_step // steps
        for epoch in range(first_epoch, epochs):
            sampler.set_epoch(epoch)
            order = torch.as_tensor(list(iter(sampler)), dtype=torch.long)
            order = order[: steps * self.local_batch].view(steps, self.local_batch)
            first = start_step - epoch * steps if epoch == first_epoch else 0
            for position in range(first, steps):
                yield epoch * steps + position, order[position]


def noisy_training_split(data: DatasetSplits, config: TrainConfig
                         ) -> tuple[DatasetSplits, torch.Tensor]:
    """``data`` with its training split subsampled to ``train_size`` (stratified, fixed seed
    :data:`VALIDATION_SEED`: the same images for every run) and ``label_noise`` applied to its
    labels (seeded by the run's ``seed``, :func:`rkdo.vision.noise.corrupt_labels`); returns it
    and the clean training labels. The test split is never changed."""
    train = data.train
    if config.train_size is not None and config.train_size < len(train):
        keep = noise.stratified_subset(train.labels, config.train_size, VALIDATION_SEED)
        train = ImageData(train.images[keep], train.labels[keep])
    clean = train.labels
    if config.label_noise:
        pairs = (noise.noise_pairs(config.dataset) if config.label_noise_kind == "asymmetric"
                 else ())
        noisy = noise.corrupt_labels(clean, config.label_noise, config.label_noise_kind,
                                     seed=config.seed, num_classes=len(data.classes), pairs=pairs)
        train = ImageData(train.images, noisy)
    if train is data.train:
        return data, clean
    return DatasetSplits(name=data.name, train=train, test=data.test, classes=data.classes), clean


def build_augment(config: TrainConfig, image_size: int, channels: int) -> TwoViews:
    """The two-view augmentation of ``config`` (crop scale and jitter strength)."""
    strength = config.jitter
    return TwoViews(image_size, channels, scale=(config.crop_scale, 1.0),
                    jitter=(strength, strength, strength, strength / 4))


def validation_splits(data: DatasetSplits, size: int) -> DatasetSplits:
    """``data`` with its test split replaced by ``size`` held-out training images."""
    n_train = len(data.train)
    if not 0 < size < n_train:
        raise ValueError(f"validation size must lie in [1, {n_train - 1}] for the {n_train} "
                         f"{data.name} training images, got {size}")
    order = torch.randperm(n_train, generator=torch.Generator().manual_seed(VALIDATION_SEED))
    keep, held = order[: n_train - size].sort().values, order[n_train - size:].sort().values
    train = data.train
    return DatasetSplits(
        name=data.name,
        train=ImageData(train.images[keep], train.labels[keep]),
        test=ImageData(train.images[held], train.labels[held]),
        classes=data.classes,
    )


def _scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer, total_steps: int
               ) -> torch.optim.lr_scheduler.LRScheduler:
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if config.lr_schedule == "none":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    warmup = min(config.warmup_steps, total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(total_steps - warmup, 1)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _optimizer(config: TrainConfig, parameters: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum,
                           weight_decay=config.weight_decay)


def _evaluate_floor(config: TrainConfig, device: str, pixels: bool) -> dict[str, Any]:
    config = replace(config, device=device)
    resolved = check_settings(config)
    parts = Components(config, resolved)
    model = RawPixels() if pixels else parts.model
    return evaluate_parts(model, parts, config, resolved, classify=False)


def evaluate_parts(model: torch.nn.Module, parts: Components, config: TrainConfig,
                   device: torch.device | str | None, *, classify: bool = True,
                   progress: bool = False) -> dict[str, Any]:
    """Evaluate ``model`` on ``parts``' data under ``config``'s protocol; ``noisy`` is
    :func:`rkdo.evaluation.noisy.evaluate_noisy` (with the loss's classifier head, if it has
    one and ``classify``), the others :func:`rkdo.evaluation.evaluate`."""
    if config.eval_protocol == "noisy":
        head = getattr(parts.loss, "classify", None) if classify else None
        return evaluate_noisy(model, parts.data, parts.clean_train_labels,
                              probe_size=config.probe_train_size or 1000, seed=config.seed,
                              device=device, image_size=parts.image_size, classify=head)
    return evaluate(model, parts.data, parts.augment, protocol=config.eval_protocol,
                    projection=config.eval_projection, seed=config.seed, device=device,
                    probe_train_size=config.probe_train_size, progress=progress)


def evaluate_initial(config: TrainConfig, device: str = "cpu") -> dict[str, Any]:
    """Evaluate the *untrained* encoder of ``config`` (same seed, same init): the floor row."""
    return _evaluate_floor(config, device, pixels=False)


def evaluate_pixels(config: TrainConfig, device: str = "cpu") -> dict[str, Any]:
    """Evaluate the raw pixels of ``config``'s data (:class:`~rkdo.vision.models.RawPixels`)
    under its protocol, probe subset and seed: the raw-pixel floor row."""
    return _evaluate_floor(config, device, pixels=True)
