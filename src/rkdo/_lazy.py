"""A package face whose names load on first use (PEP 562).

A package's ``__init__`` that imports its modules loads all of them (and torch) as soon as any
one of its modules is imported: ``rkdo train --help`` reads the declarations of
:mod:`rkdo.training.config` and must not start torch. :func:`lazy_face` makes a package's face
lazy: each public name maps to the module that defines it, imported when the name is first
read (``from rkdo.training import train`` works as before); any other submodule loads when it
is first read as an attribute (``rkdo.bench.store``), as it would have been after an eager face.
A submodule that shares a face name (``rkdo.bench.plan``, the module of the function
``rkdo.bench.plan``) does not replace the name when it loads: the face keeps the function, as
an eager face that imported it last did.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Mapping
from typing import Any

__all__ = ["lazy_face"]


class _LazyPackage(types.ModuleType):
    """A package whose ``_homes`` names load on first read."""

    _homes: Mapping[str, str]

    def __getattr__(self, name: str) -> Any:  # only for names not set yet
        homes = self.__dict__.get("_homes", {})
        if name in homes:
            value = getattr(importlib.import_module(homes[name]), name)
            self.__dict__[name] = value  # the next read is a plain attribute
            return value
        if not name.startswith("__") and importlib.util.find_spec(f"{self.__name__}.{name}"):
            return importlib.import_module(f"{self.__name__}.{name}")
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and name in self.__dict__.get("_homes", {}):
            return  # a submodule loading under a face name: the face's name stays
        super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        return sorted({*self.__dict__, *self.__dict__.get("_homes", {})})


def lazy_face(package: str, homes: Mapping[str, str]) -> None:
    """Make ``package`` (its ``__name__``, from its ``__init__``) load each name of ``homes``
    from the module (absolute name) that defines it, on first read."""
    module = sys.modules[package]
    module.__class__ = _LazyPackage
    module.__dict__["_homes"] = dict(homes)
