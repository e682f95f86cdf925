"""scikit-learn estimators over the core: I-Con's neighbour-embedding and clustering rows.

- :class:`NeighbourEmbedding`: t-SNE (exact or FFT-interpolated), SNE and the InfoNCE neighbour
  embedding, static or with RKDO's recursive teacher, free points or a parametric MLP.
- :class:`KernelClustering`: soft assignments fitted to a neighbour graph with I-Con's
  clustering kernel, debiased, optionally with a recursive sharpened target.

The two load on first use (PEP 562, :mod:`rkdo._lazy`), so that ``rkdo embed --help`` and
``rkdo cluster --help`` can read the defaults declared in :mod:`._embedding_defaults` and
:mod:`._cluster_defaults` without loading torch or scikit-learn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rkdo._lazy import lazy_face

if TYPE_CHECKING:
    from rkdo.estimators.clustering import KernelClustering
    from rkdo.estimators.embedding import NeighbourEmbedding

__all__ = ["NeighbourEmbedding", "KernelClustering"]

lazy_face(__name__, {"NeighbourEmbedding": "rkdo.estimators.embedding",
                     "KernelClustering": "rkdo.estimators.clustering"})
