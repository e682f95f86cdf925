"""Warnings that point at the user's line, not at the estimator's insides.

A fixed ``stacklevel`` is right for one call path only: ``fit`` calls ``fit_transform``, which
scikit-learn's ``set_output`` wraps, which calls ``_fit``, and the sampled solver adds a frame.
:func:`warn_user` counts the frames instead: it skips every frame whose code lives in the
``rkdo`` or ``scikit-learn`` packages and warns at the first one outside them, the line that
called the estimator (or the scikit-learn utility, e.g. ``cross_val_score``, that the user
called).
"""

from __future__ import annotations

import os
import sys
import warnings

import sklearn

__all__ = ["warn_user"]

_INSIDE = (os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,
           os.path.dirname(os.path.abspath(sklearn.__file__)) + os.sep)


def _outside_level() -> int:
    """The ``stacklevel`` (counted from :func:`warn_user`) of the first frame outside rkdo
    and scikit-learn."""
    frame, level = sys._getframe(2), 2
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_INSIDE):
        frame, level = frame.f_back, level + 1
    return level


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)`` attributed to the user's line (module docstring)."""
    warnings.warn(message, category, stacklevel=_outside_level())
