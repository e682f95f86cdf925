"""Both estimators pass scikit-learn's estimator checks (strict)."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from rkdo.estimators import KernelClustering, NeighbourEmbedding

ESTIMATORS = [
    NeighbourEmbedding(perplexity=3.0, max_iter=30, early_exaggeration_iter=10, random_state=0),
    NeighbourEmbedding(perplexity=3.0, max_iter=30, early_exaggeration_iter=10, random_state=0,
                       parametric=True, hidden_layer_sizes=(16,)),
    KernelClustering(n_clusters=3, n_neighbors=3, max_iter=30, n_init=1, random_state=0),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible(estimator, check) -> None:
    check(estimator)
