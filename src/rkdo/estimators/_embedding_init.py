"""The initial embedding of :class:`~rkdo.estimators.NeighbourEmbedding`.

``init`` is ``"pca"`` (the first ``n_components`` principal components of ``X``), ``"spectral"``
(the spectral embedding of the joint ``P``, first eigenvector dropped) or ``"random"``
(standard deviation 1e-4 per coordinate); PCA and spectral starts are rescaled so that the
first coordinate has standard deviation 1e-4, the field's convention. PCA needs features: when
``X`` holds distances (``metric="precomputed"``) or there is no ``X`` (affinities alone) it falls
back to spectral, with a warning at the user's line (:func:`warn_user`); with fewer features or
points than ``n_components`` it falls back to random. An array ``init`` is used as given, after
:func:`check_init` of its shape.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import PCA
from sklearn.manifold import spectral_embedding

from rkdo.estimators._user_warning import warn_user
from rkdo.estimators.affinities import Affinity, joint

__all__ = ["check_init", "initial_embedding"]


def check_init(init: str | np.ndarray, n: int, n_components: int) -> None:
    """Refuse an array ``init`` that is not ``(n, n_components)`` and finite."""
    if isinstance(init, str):
        return
    array = np.asarray(init)
    if array.shape != (n, n_components):
        raise ValueError(f"init must have shape (n_samples, n_components) = "
                         f"({n}, {n_components}), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("init contains NaN or infinite values")


def _scaled(y: np.ndarray) -> np.ndarray:
    return y / max(float(np.std(y[:, 0])), 1e-12) * 1e-4


def _spectral(affinity: Affinity, n_components: int, rng: np.random.RandomState) -> np.ndarray:
    graph = sp.csr_matrix(joint(affinity.P_, affinity.kind))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Graph is not fully connected")
        y = spectral_embedding(graph, n_components=n_components, random_state=rng,
                               drop_first=True)
    return _scaled(y)


def initial_embedding(init: str | np.ndarray, x, affinity: Affinity, n_components: int,
                      metric: str | Callable, rng: np.random.RandomState) -> np.ndarray:
    """The ``(n, n_components)`` float64 start of the optimisation (module docstring)."""
    n = affinity.n_samples_
    if not isinstance(init, str):
        return np.array(init, dtype=np.float64)
    if init == "spectral":
        return _spectral(affinity, n_components, rng)
    if init == "pca":
        if x is None or metric == "precomputed":
            warn_user("init='pca' needs features; using init='spectral' (the input holds "
                      "distances or affinities only)")
            return _spectral(affinity, n_components, rng)
        if min(x.shape) > n_components or (
                not sp.issparse(x) and min(x.shape) >= n_components):
            solver = "arpack" if sp.issparse(x) else "randomized"
            pca = PCA(n_components, svd_solver=solver, random_state=rng)
            # whatever sklearn.set_config(transform_output=...) says, an array comes back
            y = np.asarray(pca.set_output(transform="default").fit_transform(x))
            return _scaled(y)
    return 1e-4 * rng.standard_normal((n, n_components))
