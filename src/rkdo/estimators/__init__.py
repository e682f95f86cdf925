"""scikit-learn estimators over the core: I-Con's neighbour-embedding and clustering rows.

- :class:`NeighbourEmbedding`: t-SNE (exact or FFT-interpolated), SNE and the InfoNCE neighbour
  embedding, static or with RKDO's recursive teacher, free points or a parametric MLP.
- :class:`KernelClustering`: soft assignments fitted to a neighbour graph with I-Con's
  clustering kernel, debiased, optionally with a recursive sharpened target.

The two load on first use (PEP 562), so that ``rkdo embed --help`` can read the defaults
declared in :mod:`._embedding_defaults` without loading torch or scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rkdo.estimators.clustering import KernelClustering
    from rkdo.estimators.embedding import NeighbourEmbedding

__all__ = ["NeighbourEmbedding", "KernelClustering"]

_HOMES = {"NeighbourEmbedding": "rkdo.estimators.embedding",
          "KernelClustering": "rkdo.estimators.clustering"}


def __getattr__(name: str) -> Any:
    """An estimator class, its module imported on first use."""
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'rkdo.estimators' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
