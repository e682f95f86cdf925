"""The shared-neighbour counts of the supervisory graph, edge by edge, against dense and sparse
products of the membership matrix (the ``O(n k^2)`` computation they replace)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import rkdo.estimators._cluster_graph as module
from rkdo.estimators._cluster_graph import SupervisoryGraph, shared_counts
from rkdo.estimators._knn import knn_search


def _membership(indices: np.ndarray) -> np.ndarray:
    """Dense ``M``: ``M_il`` = how often ``l`` is in ``N(i)`` (the k listed and ``i``)."""
    n = indices.shape[0]
    member = np.eye(n, dtype=np.int64)
    np.add.at(member, (np.repeat(np.arange(n), indices.shape[1]), indices.ravel()), 1)
    return member


def _edges(indices: np.ndarray) -> sp.csr_matrix:
    """The CSR structure of ``A + A^T`` for the k-NN lists ``indices``."""
    n, k = indices.shape
    adjacency = sp.csr_matrix((np.ones(n * k), (np.repeat(np.arange(n), k), indices.ravel())),
                              shape=(n, n))
    return adjacency + adjacency.T


def _check(indices: np.ndarray) -> None:
    edges = _edges(indices)
    rows = np.repeat(np.arange(edges.shape[0]), np.diff(edges.indptr))
    counts = shared_counts(indices, edges.indptr, edges.indices)
    member = _membership(indices)
    np.testing.assert_array_equal(counts, (member @ member.T)[rows, edges.indices])
    scipy_member = sp.csr_matrix(member.astype(np.float64))
    product = (scipy_member @ scipy_member.T).tocsr()
    np.testing.assert_array_equal(counts, np.asarray(product[rows, edges.indices]).ravel())


@pytest.fixture(params=["pairwise", "product"])
def method(request, monkeypatch) -> str:
    """Each test of the counts runs once by comparisons and once by the blocked product."""
    monkeypatch.setattr(module, "_PAIRWISE_UP_TO", 10**9 if request.param == "pairwise" else 0)
    return request.param


@pytest.mark.parametrize("k", [1, 2, 3, 5, 11, 35])
@pytest.mark.parametrize("duplicated", [False, True])
def test_counts_equal_the_membership_product_on_tied_points(k, duplicated, method) -> None:
    # integer coordinates on a small grid: many tied distances; duplicated rows tie at zero
    x = np.random.default_rng(k).integers(0, 4, size=(40, 2)).astype(np.float64)
    if duplicated:
        x[20:30] = x[:10]
    indices, _ = knn_search(x, k)
    _check(indices)
    # with distinct lists, the count is the size of the intersection of the two sets
    edges = _edges(indices)
    rows = np.repeat(np.arange(40), np.diff(edges.indptr))
    near = [set(row.tolist()) | {i} for i, row in enumerate(indices)]
    expected = [len(near[i] & near[j]) for i, j in zip(rows, edges.indices, strict=True)]
    np.testing.assert_array_equal(shared_counts(indices, edges.indptr, edges.indices), expected)


def test_a_point_listed_twice_counts_as_the_product_does(method) -> None:
    """Approximate search can list a point itself (a duplicate of it came first) or one
    neighbour twice: then ``M`` holds a 2 and the count follows ``M M^T``, not the set."""
    indices = np.array([[1, 2], [0, 1], [3, 3], [2, 0], [4, 1]])
    _check(indices)
    edges = _edges(indices)
    counts = shared_counts(indices, edges.indptr, edges.indices)
    position = edges.indptr[1] + np.searchsorted(edges.indices[edges.indptr[1]:edges.indptr[2]], 1)
    assert counts[position] == 1 + 2 * 2  # N(1) = {0, 1, 1}: 0 once, 1 twice on both sides


def test_counts_beyond_k_plus_one_keep_their_value(method) -> None:
    """A degenerate list can push ``S_ij`` to ``(k + 1)^2``, past a byte: here point 1 lists
    itself k times, ``S_11 = 17^2`` and ``S_01 = 16 * 17``."""
    k = 16
    indices = np.array([[1] * k, [1] * k, [0] * k])
    _check(indices)
    edges = _edges(indices)
    counts = shared_counts(indices, edges.indptr, edges.indices)
    np.testing.assert_array_equal(counts, [16 * 17, 16, 16 * 17, 17 * 17, 16])


@pytest.mark.parametrize("chunk", [1, 2, 7, 12, 1000])
def test_chunks_that_split_rows_change_nothing(monkeypatch, chunk, method) -> None:
    x = np.random.default_rng(5).normal(size=(60, 3))
    indices, _ = knn_search(x, 5)
    monkeypatch.setattr(module, "_CHUNK", chunk)
    _check(indices)


@pytest.mark.parametrize("shared", [1.0, 2.0, 3.0])
def test_build_weights_each_edge_by_the_product_dense_and_sparse_input(shared) -> None:
    x = np.random.default_rng(2).integers(0, 3, size=(50, 6)).astype(np.float64)
    x[25:35] = x[:10]
    k = 6
    for data in (x, sp.csr_matrix(x)):  # (their searches may break the ties differently)
        indices, _ = knn_search(data, k)
        member = sp.csr_matrix(_membership(indices).astype(np.float64))
        expected = (_edges(indices) * (0.5 / k)).multiply((member @ member.T).power(shared))
        expected = sp.csr_matrix(expected)
        expected.setdiag(0.0)
        expected.eliminate_zeros()
        graph = SupervisoryGraph.build(data, affinity="knn", n_neighbors=k, perplexity=30.0,
                                       walk_length=2, shared=shared, random_state=0)
        for name in ("indptr", "indices", "data"):
            np.testing.assert_array_equal(getattr(graph.symmetric, name),
                                          getattr(expected, name))
        assert graph.n_neighbors == k


def test_n_neighbors_is_a_constructor_argument() -> None:
    weights = sp.csr_matrix(np.ones((3, 3)))
    assert SupervisoryGraph(weights, 2).n_neighbors is None
    assert SupervisoryGraph(weights, 2, n_neighbors=4).n_neighbors == 4
    with pytest.warns(UserWarning, match="n_neighbors = 9 exceeds"):
        graph = SupervisoryGraph.build(np.arange(12.0).reshape(6, 2), affinity="knn",
                                       n_neighbors=9, perplexity=30.0, walk_length=2,
                                       shared=2.0, random_state=0)
    assert graph.n_neighbors == 5


@pytest.mark.parametrize("case", ["diagonal and zeros", "no diagonal", "empty last rows"])
def test_constructor_drops_the_diagonal_as_setdiag_and_eliminate_zeros_do(case) -> None:
    """The constructor's own removal of the diagonal and explicit zeros (canonical input) leaves
    the arrays scipy's ``setdiag(0)`` + ``eliminate_zeros`` leave (the walk's draws follow
    their order)."""
    rng = np.random.default_rng(4)
    dense = rng.random((9, 9)) * (rng.random((9, 9)) < 0.4)
    dense = dense + dense.T
    if case == "no diagonal":
        np.fill_diagonal(dense, 0.0)
    if case == "empty last rows":
        dense[-3:], dense[:, -3:] = 0.0, 0.0
    matrix = sp.csr_matrix(dense)
    if case == "diagonal and zeros":
        matrix.data[::5] = 0.0  # explicit zeros, still canonical
        assert matrix.has_canonical_format and np.any(matrix.diagonal() != 0)
    expected = matrix.copy()
    expected.setdiag(0.0)
    expected.eliminate_zeros()
    graph = SupervisoryGraph(matrix, 2)
    for name in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(graph.symmetric, name), getattr(expected, name))
