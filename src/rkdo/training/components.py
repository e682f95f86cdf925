"""What a config builds before the first step: data, encoder, loss, optimiser, augmentation.

For a config on a training split of ``n`` images and ``W`` processes:

    steps per epoch   S = min(steps_per_epoch, floor(n / batch_size))
    total steps       T = S * epochs
    local batch       batch_size / W                  (each process's share of a step)

The encoder is initialised from ``torch.manual_seed(seed)``, so a run, its resume and its
untrained floor (:func:`evaluate_initial`) start from the same weights.
"""

from __future__ import annotations

from typing import Any

import torch

from rkdo.evaluation import evaluate
from rkdo.training.config import TrainConfig, check_device, validate
from rkdo.training.objective import Objective, build_loss
from rkdo.vision import data as data_module
from rkdo.vision.augment import TwoViews
from rkdo.vision.models import build_model

__all__ = ["Components", "resolve_device", "evaluate_initial"]


def resolve_device(name: str) -> torch.device:
    """``auto`` is the current CUDA device if there is one, else the CPU; names of devices
    this machine lacks are refused (:func:`~rkdo.training.config.check_device`)."""
    check_device(name)
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device(name)


class Components:
    """Model, loss (as an :class:`Objective`), optimiser, data and augmentation for a config."""

    def __init__(self, config: TrainConfig, device: torch.device, world: int = 1) -> None:
        self.data = data_module.load(config.dataset, config.data_root, config.download,
                                      holdout_fraction=config.holdout_fraction)
        self.image_size = config.image_size or data_module.default_image_size(config.dataset)
        n_train = len(self.data.train)
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
        ).to(device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.loss = build_loss(config, n_train, self.total_steps).to(device)
        self.objective = Objective.for_config(self.loss, config)
        self.augment = TwoViews(self.image_size, self.data.channels)
        self.optimizer = _optimizer(config, [*self.model.parameters(), *self.loss.parameters()])
        self.scheduler = (
            torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=self.total_steps)
            if config.lr_schedule == "cosine"
            else torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda _: 1.0)
        )


def _optimizer(config: TrainConfig, parameters: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum,
                           weight_decay=config.weight_decay)


def evaluate_initial(config: TrainConfig, device: str = "cpu") -> dict[str, Any]:
    """Evaluate the *untrained* encoder of ``config`` (same seed, same init): the floor row."""
    validate(config)
    parts = Components(config, torch.device(device))
    return evaluate(parts.model, parts.data, parts.augment, protocol=config.eval_protocol,
                    projection=config.eval_projection, seed=config.seed, device=device,
                    probe_train_size=config.probe_train_size)
