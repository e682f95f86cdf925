"""rkdo: Recursive KL Divergence Optimization and the I-Con framework.

    L = 1/n sum_i KL(p(.|i) || q(.|i)),      p(t) = (1 - alpha) p(t-1) + alpha q(t-1)

Losses you can drop into any training loop::

    from rkdo import IConLoss, RKDOLoss
    loss = RKDOLoss()(z1, z2)          # the reference notebooks' RKDO, two views

Kernels live in :mod:`rkdo.kernels`, the pure math in :mod:`rkdo.functional`, presets of the
I-Con table in :mod:`rkdo.methods`, the temperature and ``alpha`` schedules in
:mod:`rkdo.schedules`, the temporal teacher in :mod:`rkdo.teacher`. Importing ``rkdo`` loads
only this torch-only core; the application layers (``rkdo.vision``, ``rkdo.evaluation``,
``rkdo.training``, ``rkdo.bench``, ``rkdo.viz``, ``rkdo.cli``) load when imported.
"""

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
