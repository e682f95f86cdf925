"""scikit-learn estimators over the core: I-Con's neighbour-embedding and clustering rows.

- :class:`NeighbourEmbedding`: t-SNE (exact or FFT-interpolated), SNE and the InfoNCE neighbour
  embedding, static or with RKDO's recursive teacher, free points or a parametric MLP.
- :class:`KernelClustering`: soft assignments fitted to a neighbour graph with I-Con's
  clustering kernel, debiased, optionally with a recursive sharpened target.
"""

from rkdo.estimators.clustering import KernelClustering
from rkdo.estimators.embedding import NeighbourEmbedding

__all__ = ["NeighbourEmbedding", "KernelClustering"]
