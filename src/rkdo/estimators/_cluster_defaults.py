"""What :class:`~rkdo.estimators.KernelClustering` takes, declared without torch or
scikit-learn: every parameter's default and the choices of those that name one.

The estimator's signature reads its defaults from :data:`DEFAULTS` (so ``get_params()`` of a
default estimator equals it) and ``rkdo cluster`` reads them from here too: ``rkdo cluster
--help`` then starts without loading torch, and the defaults keep one home. (A ``_cluster*``
file, so ``benchmarks/clustering.py``'s estimator hash covers the defaults.)
"""

from __future__ import annotations

from types import MappingProxyType

__all__ = ["DEFAULTS", "AFFINITIES", "INITS"]

AFFINITIES = ("knn", "gaussian")
INITS = ("spectral", "random")

DEFAULTS = MappingProxyType({
    "n_clusters": 10, "n_components": 50, "hidden_layer_sizes": (256,), "affinity": "knn",
    "n_neighbors": 10, "perplexity": 30.0, "walk_length": 2, "shared_neighbors": 2.0,
    "init": "spectral", "debias_p": 0.0, "debias_q": 0.0, "ema": 0.9, "alpha": 0.0,
    "batch_size": 4096, "max_iter": 50, "tol": 1e-3, "learning_rate": 1e-2, "n_init": 1,
    "random_state": None, "device": "cpu", "verbose": False,
})
"""Each parameter's default, by name (read-only)."""
