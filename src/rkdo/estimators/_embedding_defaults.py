"""What :class:`~rkdo.estimators.NeighbourEmbedding` takes, declared without torch or
scikit-learn: every parameter's default and the choices of those that name one.

The estimator's signature reads its defaults from :data:`DEFAULTS` (so ``get_params()`` of a
default estimator equals it) and ``rkdo embed`` reads them from here too: ``rkdo embed --help``
then starts without loading torch, and the defaults keep one home.
"""

from __future__ import annotations

from types import MappingProxyType

__all__ = ["DEFAULTS", "OBJECTIVES", "OBJECTIVE_NAMES", "SOLVERS", "INITS", "MIN_SAMPLES"]

OBJECTIVES = ("tsne", "sne", "infonce", "neg")
OBJECTIVE_NAMES = {"tsne": "t-SNE", "sne": "SNE", "infonce": "InfoNCE",
                   "neg": "negative sampling"}
"""Each objective as figures print it."""
SOLVERS = ("auto", "exact", "fft", "sampled")
INITS = ("pca", "random", "spectral")

MIN_SAMPLES = 4
"""The fewest points an embedding accepts (``fit`` refuses fewer; ``rkdo embed`` and ``rkdo
cluster`` check it before loading the estimators)."""

DEFAULTS = MappingProxyType({
    "n_components": 2, "objective": "tsne", "perplexity": 30.0, "metric": "euclidean",
    "metric_params": None, "affinity": "perplexity", "dof": 1.0, "method": "auto",
    "max_iter": 750, "early_exaggeration": 12.0, "early_exaggeration_iter": 250,
    "learning_rate": "auto", "max_step_norm": 5.0, "min_grad_norm": 1e-7,
    "n_iter_without_progress": 300, "init": "pca", "alpha": 0.0, "alpha_schedule": "constant",
    "parametric": False, "hidden_layer_sizes": (256, 256), "callbacks": None, "n_jobs": None,
    "random_state": None, "device": "cpu", "verbose": False,
})
"""Each parameter's default, by name (read-only)."""
