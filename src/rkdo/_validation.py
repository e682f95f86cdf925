"""Argument checks shared by every layer: one message shape, ``NAME must be ..., got VALUE``.

Each check returns the value converted to its canonical type, so callers write
``self.k = check_int("k", k, low=1)``. A check never accepts ``bool`` as an integer.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["check_int", "check_positive", "check_unit_interval", "check_choice"]


def check_int(name: str, value: Any, low: int = 0, high: int | None = None) -> int:
    """``int(value)`` if it is an integer in ``[low, high]``, else ``ValueError``."""
    try:
        ok = not isinstance(value, bool) and int(value) == value
    except (TypeError, ValueError, OverflowError):
        ok = False
    if ok and value >= low and (high is None or value <= high):
        return int(value)
    where = f">= {low}" if high is None else f"in [{low}, {high}]"
    raise ValueError(f"{name} must be an integer {where}, got {value!r}")


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """``float(value)`` if it is finite and > 0 (>= 0 with ``allow_zero``), else ``ValueError``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    ok = number >= 0.0 if allow_zero else number > 0.0
    if ok and math.isfinite(number) and not isinstance(value, bool):
        return number
    bound = ">= 0" if allow_zero else "> 0"
    raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")


def check_unit_interval(
    name: str, value: float, *, low_open: bool = False, high_open: bool = False
) -> float:
    """``float(value)`` if it lies in the interval [0, 1] (ends open as requested), else
    ``ValueError`` naming the interval."""
    value = float(value)
    low_ok = value > 0.0 if low_open else value >= 0.0
    high_ok = value < 1.0 if high_open else value <= 1.0
    if not (low_ok and high_ok and math.isfinite(value)):
        interval = ("(" if low_open else "[") + "0, 1" + (")" if high_open else "]")
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")
    return value


def check_choice(name: str, value: Any, choices: tuple[str, ...] | list[str]) -> str:
    """``value`` if it is one of ``choices``, else ``ValueError`` listing them."""
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of: {', '.join(choices)}")
    return value
