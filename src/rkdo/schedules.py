"""Schedules: how RKDO's temperature and teacher update rate change, in steps and over training.

In-step temperatures of :class:`~rkdo.losses.RKDOLoss`, one per recursion step ``t = 0..K``:

    tau_t = tau0 (1 - beta t / K)

The temporal temperature of :class:`~rkdo.teacher.TemporalRKDOLoss` over ``T`` training steps,
with ``t`` clamped to ``[0, T]``:

    tau(t) = tau0 (1 - beta t / T)

The teacher's update rate ``alpha_t`` (temporal and full-batch RKDO), with
``s = min(max(t, 0), T) / T``:

    constant   alpha_t = alpha
    linear     alpha_t = alpha + (final - alpha) s
    cosine     alpha_t = final + (alpha - final) (1 + cos(pi s)) / 2
    step       alpha_t = final + (alpha - final) gamma^m,     m = milestones passed
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rkdo._validation import check_int, check_unit_interval

__all__ = [
    "ALPHA_SCHEDULES",
    "AlphaSchedule",
    "alpha_schedule",
    "temperature_schedule",
    "temporal_temperature",
]

ALPHA_SCHEDULES: tuple[str, ...] = ("constant", "linear", "cosine", "step")


def temperature_schedule(temperature: float, beta: float, depth: int) -> list[float]:
    """RKDO's in-step temperatures ``tau_t = tau0 * (1 - beta * t / K)`` for ``t = 0..K``."""
    return [temperature * (1.0 - beta * t / depth) for t in range(depth + 1)]


def temporal_temperature(temperature: float, beta: float, step: int, total_steps: int) -> float:
    """The paper's temporal schedule ``tau(t) = tau0 (1 - beta t / T)``, ``t`` clamped to [0, T]."""
    total = check_int("total_steps", total_steps, low=1)
    t = min(max(int(step), 0), total)
    return temperature * (1.0 - beta * t / total)


class AlphaSchedule:
    """A picklable ``alpha_t`` schedule; build one with :func:`alpha_schedule`."""

    def __init__(self, name: str, alpha: float, total_steps: int, final: float,
                 milestones: tuple[float, ...], gamma: float) -> None:
        self.name, self.alpha, self.total_steps = name, alpha, total_steps
        self.final, self.milestones, self.gamma = final, milestones, gamma

    def progress(self, step: int) -> float:
        """``s = min(max(t, 0), T) / T``."""
        return min(max(int(step), 0), self.total_steps) / self.total_steps

    def __call__(self, step: int) -> float:
        alpha, final = self.alpha, self.final
        if self.name == "constant":
            return alpha
        s = self.progress(step)
        if self.name == "linear":
            return alpha + (final - alpha) * s
        if self.name == "cosine":
            return final + (alpha - final) * 0.5 * (1.0 + math.cos(math.pi * s))
        passed = sum(s >= m for m in self.milestones)
        return final + (alpha - final) * self.gamma**passed

    def __repr__(self) -> str:
        return (f"AlphaSchedule({self.name!r}, alpha={self.alpha}, total_steps={self.total_steps}, "
                f"final={self.final})")


def alpha_schedule(
    name: str,
    alpha: float,
    total_steps: int,
    *,
    final: float = 0.0,
    milestones: Sequence[float] = (0.5, 0.75),
    gamma: float = 0.1,
) -> AlphaSchedule:
    """The teacher's update rate ``alpha_t`` as a function of the training step ``t``.

    With ``s = min(max(t, 0), T) / T`` and ``T = total_steps``:

    - ``constant``: ``alpha_t = alpha`` (``final`` must equal ``alpha`` or be left at 0);
    - ``linear``:   ``alpha_t = alpha + (final - alpha) s``;
    - ``cosine``:   ``alpha_t = final + (alpha - final) (1 + cos(pi s)) / 2``;
    - ``step``:     ``alpha_t = final + (alpha - final) gamma^m``, ``m`` = milestones passed
      (milestones are fractions of ``T`` in (0, 1), increasing).

    ``alpha`` is where the teacher starts (large: it meets the student), ``final`` where it ends
    (small: it holds its ground). The result is a callable ``step -> alpha_t``.
    """
    if name not in ALPHA_SCHEDULES:
        raise ValueError(f"alpha schedule must be one of {ALPHA_SCHEDULES}, got {name!r}")
    alpha = check_unit_interval("alpha", alpha)
    final = check_unit_interval("alpha_final", final)
    total = check_int("total_steps", total_steps, low=1)
    if name == "constant" and final not in (0.0, alpha):
        raise ValueError(
            f"a constant alpha schedule has no final value; got alpha_final={final} != "
            f"alpha={alpha}; use schedule 'linear', 'cosine' or 'step' to anneal"
        )
    marks = tuple(float(m) for m in milestones)
    gamma = check_unit_interval("gamma", gamma)
    if name == "step" and (
        not marks or any(not 0.0 < m < 1.0 for m in marks) or list(marks) != sorted(marks)
    ):
        raise ValueError(
            f"milestones must be increasing fractions of total_steps in (0, 1), got {milestones!r}"
        )
    return AlphaSchedule(name, alpha, total, final, marks, gamma)
