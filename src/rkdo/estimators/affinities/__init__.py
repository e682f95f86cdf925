"""Input affinities ``P`` of neighbour embedding as small objects, one per file (openTSNE's idea).

Each object is configured in its constructor, computes its matrix in ``fit(X)`` and stores it as
``P_``, an ``(n, n)`` matrix (``scipy.sparse`` CSR, or a dense ``numpy`` array when all pairs
are kept) together with its ``kind``:

- ``"conditional"``: row ``i`` is ``p(.|i)``, a distribution over the other points;
- ``"joint"``: symmetric, the whole matrix sums to one (t-SNE's ``P``).

:func:`joint` and :func:`conditional` convert between them (``P = (p + p^T) / 2n`` one way, row
normalisation the other), so every objective of :class:`~rkdo.estimators.NeighbourEmbedding`
accepts every affinity. ``to_new(X)`` gives the ``(m, n)`` conditional ``p(j|new i)`` of new
points against the fitted ones (what ``transform`` optimises), where the affinity can say it.

- :class:`PerplexityBased`: Gaussian with per-point width set by a perplexity, on the k nearest
  neighbours or all pairs, under any scikit-learn / scipy metric, a callable or ``"precomputed"``
  distances (dense or a sparse k-NN graph);
- :class:`Uniform`: ``p(j|i) = 1/k`` on the ``k`` nearest neighbours;
- :class:`PrecomputedAffinities`: a matrix the user built (openTSNE's ``PrecomputedAffinities``).
"""

from rkdo.estimators.affinities._base import Affinity, conditional, joint
from rkdo.estimators.affinities.perplexity import PerplexityBased
from rkdo.estimators.affinities.precomputed import PrecomputedAffinities
from rkdo.estimators.affinities.uniform import Uniform

__all__ = ["Affinity", "PerplexityBased", "PrecomputedAffinities", "Uniform", "joint",
           "conditional"]
