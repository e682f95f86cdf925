"""rkdo._validation: the shared argument checks, their bounds and their messages."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rkdo import functional
from rkdo._validation import check_choice, check_int, check_positive, check_unit_interval


@pytest.mark.parametrize("value", [3, 3.0, np.int64(3), torch.tensor(3)])
def test_check_int_accepts_integral_values_and_returns_an_int(value) -> None:
    got = check_int("k", value, low=1)
    assert got == 3 and type(got) is int


@pytest.mark.parametrize("value", [True, False])
def test_check_int_refuses_bool(value: bool) -> None:
    with pytest.raises(ValueError, match=rf"k must be an integer >= 0, got {value!r}"):
        check_int("k", value)


@pytest.mark.parametrize("value", [2.5, "3", None, math.nan, math.inf, [1]])
def test_check_int_refuses_non_integers(value) -> None:
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        check_int("k", value, low=1)


def test_check_int_bounds_and_messages() -> None:
    assert check_int("n", 0) == 0
    assert check_int("n", 2, low=2) == 2
    assert check_int("n", 5, low=1, high=5) == 5
    with pytest.raises(ValueError, match=r"^n must be an integer >= 2, got 1$"):
        check_int("n", 1, low=2)
    with pytest.raises(ValueError, match=r"^n must be an integer in \[1, 5\], got 6$"):
        check_int("n", 6, low=1, high=5)
    with pytest.raises(ValueError, match=r"^n must be an integer >= 0, got -1$"):
        check_int("n", -1)


@pytest.mark.parametrize("value", [0.5, 1, np.float32(2.0), torch.tensor(0.1)])
def test_check_positive_accepts_and_returns_a_float(value) -> None:
    got = check_positive("lr", value)
    assert got == pytest.approx(float(value)) and type(got) is float


@pytest.mark.parametrize("value", [0.0, -1.0, math.inf, math.nan, "a", None, True])
def test_check_positive_refuses(value) -> None:
    with pytest.raises(ValueError, match=r"^lr must be a finite number > 0, got "):
        check_positive("lr", value)


def test_check_positive_allow_zero() -> None:
    assert check_positive("spread", 0.0, allow_zero=True) == 0.0
    with pytest.raises(ValueError, match=r"^spread must be a finite number >= 0, got -0.1$"):
        check_positive("spread", -0.1, allow_zero=True)


@pytest.mark.parametrize(
    "value, kwargs, ok",
    [
        (0.0, {}, True), (1.0, {}, True), (-0.01, {}, False), (1.01, {}, False),
        (math.nan, {}, False), (1.0, {"high_open": True}, False),
        (0.0, {"low_open": True}, False), (0.999, {"high_open": True}, True),
    ],
)
def test_check_unit_interval(value: float, kwargs: dict, ok: bool) -> None:
    if ok:
        assert check_unit_interval("alpha", value, **kwargs) == value
    else:
        with pytest.raises(ValueError, match="alpha"):
            check_unit_interval("alpha", value, **kwargs)


def test_check_unit_interval_names_the_interval_and_stays_in_functional() -> None:
    with pytest.raises(ValueError, match=r"^beta must lie in \[0, 1\), got 1.0$"):
        check_unit_interval("beta", 1.0, high_open=True)
    with pytest.raises(ValueError, match=r"^c must lie in \(0, 1\), got 0.0$"):
        check_unit_interval("c", 0.0, low_open=True, high_open=True)
    assert functional.check_unit_interval is check_unit_interval


def test_check_choice() -> None:
    assert check_choice("dataset", "digits", ("digits", "cifar10")) == "digits"
    with pytest.raises(
        ValueError, match=r"^unknown dataset 'mnist'; choose one of: digits, cifar10$"
    ):
        check_choice("dataset", "mnist", ("digits", "cifar10"))
