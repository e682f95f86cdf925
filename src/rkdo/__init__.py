"""rkdo: Recursive KL Divergence Optimization and the I-Con framework.

    L = 1/n sum_i KL(p(.|i) || q(.|i)),      p(t) = (1 - alpha) p(t-1) + alpha q(t-1)

Losses you can drop into any training loop::

    from rkdo import IConLoss, RKDOLoss
    loss = RKDOLoss()(z1, z2)          # the reference notebooks' RKDO, two views

Kernels live in :mod:`rkdo.kernels`, the pure math in :mod:`rkdo.functional`, presets of the
I-Con table in :mod:`rkdo.methods`, the temperature and ``alpha`` schedules in
:mod:`rkdo.schedules`, the temporal teacher in :mod:`rkdo.teacher`. The names above load on
first use (PEP 562), so ``import rkdo`` itself loads nothing heavy: the ``rkdo`` command can
choose its thread settings before torch starts. The core needs only torch; the application
layers (``rkdo.vision``, ``rkdo.evaluation``, ``rkdo.training``, ``rkdo.bench``, ``rkdo.viz``,
``rkdo.cli``) load when imported.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

# Idle OpenMP threads sleep instead of spinning (unless the environment says otherwise). Read
# when torch's OpenMP runtime starts, so it takes effect when rkdo is imported before torch. With
# spinning threads, a fit beside one busy core runs ~15x slower: KernelClustering on digits
# 13.6-16.1 s with torch's defaults vs 0.9-1.0 s passive, at load 1-2 (closing note of issue 18).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

if TYPE_CHECKING:
    from rkdo import functional, kernels, methods, schedules, teacher
    from rkdo.losses import IConLoss, RKDOLoss

__all__ = [
    "IConLoss",
    "RKDOLoss",
    "functional",
    "kernels",
    "methods",
    "schedules",
    "teacher",
    "__version__",
]
__version__ = "0.1.0"

_SUBMODULES = ("functional", "kernels", "methods", "schedules", "teacher")
_LOSSES = ("IConLoss", "RKDOLoss")


def __getattr__(name: str) -> Any:
    """Load a name of the package's face on first use (``rkdo.methods``, ``rkdo.RKDOLoss``)."""
    if name in _SUBMODULES:
        return importlib.import_module(f"rkdo.{name}")
    if name in _LOSSES:
        return getattr(importlib.import_module("rkdo.losses"), name)
    raise AttributeError(f"module 'rkdo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
