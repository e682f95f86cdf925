"""Recipes: valid configs, opted into with ``--recipe``, flags given on top of them win."""

from __future__ import annotations

import pytest

from rkdo.cli.main import build_parser
from rkdo.cli.train import config_from_args
from rkdo.training import TrainConfig, validate
from rkdo.training.recipes import RECIPES, recipe_config


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_is_a_valid_config_for_its_dataset(name: str) -> None:
    config = recipe_config(name)
    validate(config)
    assert config.dataset == name
    assert config.validation_size == 0  # a recipe trains on the whole training split


def test_the_recipe_fills_only_the_flags_not_given() -> None:
    args = build_parser().parse_args(
        ["train", "--out", "x", "--recipe", "fashion-mnist", "--temperature", "0.5"])
    config = config_from_args(args)
    assert config.temperature == 0.5
    expected = {k: v for k, v in RECIPES["fashion-mnist"].items() if k != "temperature"}
    assert {k: getattr(config, k) for k in expected} == expected
    plain = config_from_args(build_parser().parse_args(["train", "--out", "x"]))
    assert plain == TrainConfig()


def test_an_unknown_recipe_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown recipe 'mnist'"):
        recipe_config("mnist")
