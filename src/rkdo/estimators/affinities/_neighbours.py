"""Distances that affinities calibrate on: all pairs or the ``k`` nearest, under any metric.

Every metric's distance ``d_ij`` enters the Gaussian squared, ``exp(-beta_i d_ij^2)`` (openTSNE's
convention; scikit-learn squares only the Euclidean one), so ``metric="euclidean"`` and
``metric="precomputed"`` on Euclidean distances give the same ``P``. Inputs are multiplied by a
power of two (exact in floating point) that brings their largest magnitude near one before any
distance is formed: a perplexity-calibrated ``P`` does not depend on the data's units, and data
of magnitude 1e200 or 1e-200 would otherwise overflow or underflow when squared. Callables and
``haversine`` (whose values are angles) are not rescaled.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
from sklearn.metrics import pairwise_distances
from sklearn.neighbors import VALID_METRICS, NearestNeighbors

__all__ = ["METRICS", "check_metric", "unit_scale", "all_pairs", "nearest", "graph_rows",
           "nearest_in", "check_distances"]

METRICS = tuple(sorted(set(VALID_METRICS["brute"]) - {"nan_euclidean"}))
_NOT_HOMOGENEOUS = ("haversine",)


def check_metric(metric: str | Callable) -> str | Callable:
    """``metric`` if it is a known name, ``"precomputed"`` or a callable."""
    if callable(metric) or metric in METRICS:
        return metric
    raise ValueError(f"unknown metric {metric!r}; choose a callable or one of: "
                     f"{', '.join(METRICS)}")


def unit_scale(x, metric: str | Callable) -> float:
    """The power of two ``s`` with ``max |s x|`` in [0.5, 1) (1 where rescaling is not sound)."""
    if callable(metric) or metric in _NOT_HOMOGENEOUS:
        return 1.0
    values = x.data if sp.issparse(x) else x
    largest = float(np.max(np.abs(values))) if values.size else 0.0
    if largest == 0.0 or not math.isfinite(largest):
        return 1.0
    return math.ldexp(1.0, -math.frexp(largest)[1])


def check_distances(d: np.ndarray, what: str) -> None:
    """Refuse negative or non-finite distances in one line."""
    values = d.data if sp.issparse(d) else d
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{what} contain NaN or infinite values")
    if np.any(values < 0.0):
        raise ValueError(f"{what} contain negative values; distances must be >= 0")


def all_pairs(x, metric: str | Callable, metric_params: dict | None,
              n_jobs: int | None) -> np.ndarray:
    """``(n, n)`` squared distances, the diagonal set to ``inf`` (no point is its own
    neighbour)."""
    if metric == "precomputed":
        d = np.array(x.toarray() if sp.issparse(x) else x, dtype=np.float64)
        check_distances(d, "precomputed distances")
    else:
        params = dict(metric_params or {})
        if metric == "mahalanobis" and "V" in params:  # scipy's pairwise form takes VI only
            params["VI"] = np.linalg.inv(params.pop("V"))
        d = pairwise_distances(x, metric=metric, n_jobs=n_jobs, **params)
        d = np.asarray(d, dtype=np.float64)
        check_distances(d, f"distances of metric {metric!r}")
    d = np.square(d)
    np.fill_diagonal(d, np.inf)
    return d


def nearest(x, k: int, metric: str | Callable, metric_params: dict | None,
            n_jobs: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``(indices, squared distances)``, both ``(n, k)``, of each point's ``k`` nearest others."""
    if metric == "precomputed":
        d = np.array(x, dtype=np.float64)
        check_distances(d, "precomputed distances")
        np.fill_diagonal(d, np.inf)
        indices = np.argpartition(d, k - 1, axis=1)[:, :k]
        chosen = np.take_along_axis(d, indices, axis=1)
        return indices.astype(np.int64), np.square(chosen)
    search = NearestNeighbors(n_neighbors=k, metric=metric, metric_params=metric_params,
                              n_jobs=n_jobs).fit(x)
    distances, indices = search.kneighbors()
    check_distances(distances, f"distances of metric {metric!r}")
    return indices.astype(np.int64), np.square(distances, dtype=np.float64)


def graph_rows(graph: sp.spmatrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A precomputed sparse k-NN distance graph as padded rows: ``(indices, squared distances,
    mask)``, each ``(n, k_max)``; the stored entries of row ``i`` are its neighbours."""
    graph = sp.csr_matrix(graph, dtype=np.float64)
    graph.sort_indices()
    check_distances(graph, "precomputed distances")
    n = graph.shape[0]
    counts = np.diff(graph.indptr)
    width = int(counts.max()) if n else 0
    if width == 0:
        raise ValueError("the precomputed k-NN graph stores no neighbours")
    slot = np.arange(graph.nnz) - np.repeat(graph.indptr[:-1], counts)
    row = np.repeat(np.arange(n), counts)
    indices = np.zeros((n, width), dtype=np.int64)
    sq = np.full((n, width), np.inf)
    indices[row, slot] = graph.indices
    sq[row, slot] = np.square(graph.data)
    mask = np.zeros((n, width), dtype=bool)
    mask[row, slot] = graph.indices != row  # a stored self-distance is not a neighbour
    return indices, np.where(mask, sq, np.inf), mask


def nearest_in(reference, x_new, k: int, metric: str | Callable,
               metric_params: dict | None, n_jobs: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``(indices, squared distances)``, ``(m, k)``, of new points' nearest reference points
    (``metric="precomputed"``: ``x_new`` holds the ``(m, n)`` distances to the reference)."""
    if metric == "precomputed":
        d = np.array(x_new.toarray() if sp.issparse(x_new) else x_new, dtype=np.float64)
        check_distances(d, "precomputed distances")
        indices = np.argpartition(d, k - 1, axis=1)[:, :k]
        return indices.astype(np.int64), np.square(np.take_along_axis(d, indices, axis=1))
    search = NearestNeighbors(n_neighbors=k, metric=metric, metric_params=metric_params,
                              n_jobs=n_jobs).fit(reference)
    distances, indices = search.kneighbors(x_new)
    return indices.astype(np.int64), np.square(distances, dtype=np.float64)
