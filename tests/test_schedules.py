"""rkdo.schedules: the in-step and temporal temperatures and the alpha_t schedules in closed
form, and the names rkdo.functional and rkdo.teacher re-export."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from rkdo import functional, schedules, teacher
from rkdo.schedules import (
    ALPHA_SCHEDULES,
    alpha_schedule,
    temporal_temperature,
)


def test_temperature_schedule_reference_values() -> None:
    # the reference notebooks' temperatures: 0.5, then 0.483, 0.467, 0.45 (MISSION.md)
    got = schedules.temperature_schedule(0.5, 0.1, 3)
    np.testing.assert_allclose(got, [0.5, 0.5 * (1 - 0.1 / 3), 0.5 * (1 - 0.2 / 3), 0.45],
                               rtol=1e-15)
    assert schedules.temperature_schedule(1.0, 0.0, 4) == [1.0] * 5


def test_alpha_schedules_closed_forms():
    T = 100
    constant = alpha_schedule("constant", 0.4, T)
    linear = alpha_schedule("linear", 0.8, T, final=0.2)
    cosine = alpha_schedule("cosine", 0.8, T, final=0.2)
    step = alpha_schedule("step", 0.8, T, final=0.0, milestones=(0.5, 0.75), gamma=0.1)
    assert [constant(t) for t in (0, 50, 100, 500)] == [0.4] * 4
    assert linear(0) == pytest.approx(0.8) and linear(25) == pytest.approx(0.65)
    assert linear(100) == pytest.approx(0.2) and linear(1000) == pytest.approx(0.2)
    assert linear(-5) == pytest.approx(0.8)
    assert cosine(0) == pytest.approx(0.8) and cosine(100) == pytest.approx(0.2)
    assert cosine(50) == pytest.approx(0.5)
    assert cosine(25) == pytest.approx(0.2 + 0.6 * (1 + math.cos(math.pi / 4)) / 2)
    assert [step(t) for t in (0, 49, 50, 74, 75, 100)] == pytest.approx(
        [0.8, 0.8, 0.08, 0.08, 0.008, 0.008]
    )
    # picklable, so a module holding one can be torch.save'd whole
    assert pickle.loads(pickle.dumps(cosine))(25) == cosine(25)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="exp", alpha=0.5, total_steps=10), "constant', 'linear', 'cosine', 'step"),
        (dict(name="linear", alpha=1.5, total_steps=10), "alpha must lie in"),
        (dict(name="linear", alpha=0.5, total_steps=0), "total_steps"),
        (dict(name="constant", alpha=0.5, total_steps=10, final=0.1), "constant alpha"),
        (dict(name="step", alpha=0.5, total_steps=10, milestones=(0.8, 0.2)), "milestones"),
    ],
)
def test_alpha_schedule_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        alpha_schedule(**kwargs)


def test_alpha_schedules_listed():
    assert ALPHA_SCHEDULES == ("constant", "linear", "cosine", "step")


def test_temporal_temperature():
    assert temporal_temperature(0.5, 0.1, 0, 10) == 0.5
    assert temporal_temperature(0.5, 0.1, 5, 10) == pytest.approx(0.5 * 0.95)
    assert temporal_temperature(0.5, 0.1, 10, 10) == pytest.approx(0.45)
    assert temporal_temperature(0.5, 0.1, 99, 10) == pytest.approx(0.45)


def test_old_homes_re_export_the_same_objects():
    assert functional.temperature_schedule is schedules.temperature_schedule
    for name in ("ALPHA_SCHEDULES", "AlphaSchedule", "alpha_schedule", "temporal_temperature"):
        assert getattr(teacher, name) is getattr(schedules, name)
        assert name in teacher.__all__
