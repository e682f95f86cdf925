"""The parameter checks of :class:`~rkdo.estimators.NeighbourEmbedding`.

Each check is ``check(name, value) -> value`` and raises a one-line ``ValueError`` that names
the parameter, what it accepts and what it got; the estimator declares one per parameter
(``NeighbourEmbedding._CONSTRAINTS``) and runs them all at the start of ``fit``, as
scikit-learn declares ``_parameter_constraints`` beside ``__init__``. The factories
(:func:`optional`, :func:`choice`, :func:`integer`, :func:`init_or_array`) take the options
the estimator defines.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from rkdo._validation import check_choice, check_int, check_positive
from rkdo.estimators.affinities import Affinity

__all__ = ["Check", "optional", "choice", "integer", "init_or_array", "learning_rate",
           "affinity", "callbacks", "mapping", "n_jobs", "sizes"]

Check = Callable[[str, Any], Any]


def optional(check: Check) -> Check:
    """``check``, letting ``None`` through."""
    return lambda name, value: None if value is None else check(name, value)


def choice(options: tuple[str, ...]) -> Check:
    return lambda name, value: check_choice(name, value, options)


def integer(low: int) -> Callable[[str, Any], int]:
    return lambda name, value: check_int(name, value, low=low)


def init_or_array(options: tuple[str, ...]) -> Check:
    """One of ``options`` or a 2-D numeric array (its shape is checked once ``n`` is known)."""

    def check(name: str, value: Any) -> Any:
        if isinstance(value, str):
            return check_choice(name, value, options)
        array = np.asarray(value)
        if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
            raise ValueError(f"{name} must be one of {', '.join(options)} or an (n_samples, "
                             f"n_components) array, got {type(value).__name__} of shape "
                             f"{array.shape}")
        return value
    return check


def learning_rate(name: str, value: Any) -> Any:
    return value if isinstance(value, str) and value == "auto" else check_positive(name, value)


def affinity(name: str, value: Any) -> Any:
    if isinstance(value, str) and value == "perplexity":
        return value
    if not isinstance(value, Affinity):
        raise ValueError(f"{name} must be 'perplexity' or an affinity object with fit and "
                         f"to_new (rkdo.estimators.affinities), got {value!r}")
    return value


def callbacks(name: str, value: Any) -> Any:
    listed = value if isinstance(value, list | tuple) else [value]
    if not all(callable(callback) for callback in listed):
        raise ValueError(f"{name} must be a callable or a list of callables "
                         "f(iteration, kl, embedding) -> bool")
    return value


def mapping(name: str, value: Any) -> Any:
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a dict of keyword arguments, got {value!r}")
    return value


def n_jobs(name: str, value: Any) -> int:
    jobs = check_int(name, value, low=-(os.cpu_count() or 1))
    if jobs == 0:
        raise ValueError(f"{name} must be a non-zero integer (-1: all cores), got 0")
    return jobs


def sizes(name: str, value: Any) -> Any:
    for size in value:
        check_int(name, size, low=1)
    return value
