"""The init='pca' fallback warning points at the caller's line, on every path into the fit."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform

from rkdo.estimators import NeighbourEmbedding
from rkdo.estimators._user_warning import warn_user


@pytest.mark.parametrize("objective", ["tsne", "neg"])  # neg: the sampled solver, a frame deeper
@pytest.mark.parametrize("entry", ["fit", "fit_transform"])
def test_pca_fallback_warning_names_the_callers_line(entry: str, objective: str) -> None:
    distances = squareform(pdist(np.random.RandomState(0).randn(20, 3)))
    estimator = NeighbourEmbedding(metric="precomputed", init="pca", perplexity=5, max_iter=20,
                                   early_exaggeration_iter=5, objective=objective,
                                   random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = inspect.currentframe().f_lineno + 1
        getattr(estimator, entry)(distances)
    fallback = [w for w in caught if "init='pca' needs features" in str(w.message)]
    assert len(fallback) == 1, [str(w.message) for w in caught]
    assert (fallback[0].filename, fallback[0].lineno) == (__file__, line)


def test_warn_user_called_from_outside_the_packages_names_that_line() -> None:
    """Called from code outside rkdo and scikit-learn (a function in this file), the warning
    names the line that called :func:`warn_user`: nothing is skipped."""
    def helper() -> None:
        warn_user("from a helper")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        helper()
    assert caught[0].filename == __file__
    assert caught[0].lineno == helper.__code__.co_firstlineno + 1
