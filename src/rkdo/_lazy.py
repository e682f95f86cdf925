"""A package face whose names load on first use (PEP 562).

A package's ``__init__`` that imports its modules loads all of them (and torch) as soon as any
one of its modules is imported: ``rkdo train --help`` reads the declarations of
:mod:`rkdo.training.config` and must not start torch. A face made with :func:`lazy_face` maps
each public name to the module that defines it and imports that module when the name is first
read; ``from rkdo.training import train`` works as before.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_face"]


def lazy_face(package: str, homes: Mapping[str, str]
              ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``homes`` maps each name to the module
    (absolute) that defines it."""

    def __getattr__(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(homes[name]), name)
        setattr(sys.modules[package], name, value)  # the next read is a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *homes})

    return __getattr__, __dir__
