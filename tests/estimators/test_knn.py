"""k-NN search against an independent reference: brute-force distances in numpy."""

from __future__ import annotations

import numpy as np
import pytest

from rkdo.estimators._knn import knn_search


def _brute(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    sq = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(sq, np.inf)
    order = np.argsort(sq, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(sq, order, axis=1)


def test_exact_matches_brute_force() -> None:
    x = np.random.default_rng(0).normal(size=(300, 7))
    indices, sq = knn_search(x, 12, method="exact")
    reference_indices, reference_sq = _brute(x, 12)
    np.testing.assert_array_equal(indices, reference_indices)
    np.testing.assert_allclose(sq, reference_sq, rtol=1e-10)
    assert indices.dtype == np.int64 and sq.dtype == np.float64


def test_auto_is_exact_on_small_data() -> None:
    x = np.random.default_rng(1).normal(size=(100, 3))
    np.testing.assert_array_equal(knn_search(x, 5)[0], knn_search(x, 5, method="exact")[0])


def test_bad_arguments() -> None:
    x = np.zeros((10, 2))
    with pytest.raises(ValueError, match="k must lie in"):
        knn_search(x, 10)
    with pytest.raises(ValueError, match="unknown method"):
        knn_search(x, 3, method="fast")
