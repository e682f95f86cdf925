"""Recipes: settings chosen on a validation split for a dataset, applied with ``--recipe NAME``.

A recipe is a partial :class:`~rkdo.training.config.TrainConfig`: the settings that
``benchmarks/recipe_search.py`` chose for a dataset on a validation split carved from its
training split (never its test split); ``docs/results/recipe.md`` has the search, every
candidate's scores and what each run cost. The field defaults themselves are left as they were,
so stored configs and results keep their meaning; a recipe is opted into.

``rkdo train --recipe fashion-mnist ...`` fills every field the command line does not give from
the recipe (flags still win), the same as writing the recipe's flags out.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from rkdo.training.config import TrainConfig

__all__ = ["RECIPES", "recipe_config"]

RECIPES: MappingProxyType[str, MappingProxyType[str, Any]] = MappingProxyType({
    "fashion-mnist": MappingProxyType({
        "dataset": "fashion-mnist", "encoder": "small-cnn", "width": 32, "embedding_dim": 64,
        "hidden_dim": 512, "temperature": 0.2, "crop_scale": 0.4, "jitter": 0.4,
        "batch_size": 256, "optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-5,
        "lr_schedule": "none", "epochs": 40, "probe_train_size": 10_000,
        "channels_last": True, "compile": False,
    }),
    "digits": MappingProxyType({
        "dataset": "digits", "encoder": "small-cnn", "width": 32, "embedding_dim": 64,
        "hidden_dim": 512, "temperature": 0.2, "crop_scale": 0.4, "jitter": 0.4,
        "batch_size": 64, "optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-5,
        "lr_schedule": "warmup-cosine", "warmup_steps": 50, "epochs": 30,
    }),
})
"""Dataset name -> the settings chosen for it (see ``docs/results/recipe.md``)."""


def recipe_config(name: str, **overrides: Any) -> TrainConfig:
    """The :class:`TrainConfig` of recipe ``name`` with ``overrides`` on top."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of: {', '.join(RECIPES)}")
    return TrainConfig(**{**RECIPES[name], **overrides})
