"""The supervisory graph of kernel clustering: a symmetric k-NN graph and walks along it.

One step of the walk is the row-normalised symmetrised k-NN graph

    W = (A + A^T) / 2 .* S^s,   A_ij = a_ij for the k nearest j of i (1/k, or the
    perplexity-calibrated Gaussian p(j|i) with ``affinity="gaussian"``),
    P1(j|i) = W_ij / sum_l W_il,

where ``S_ij = |N(i) ∩ N(j)|``, with ``N(i)`` the k nearest of ``i`` and ``i`` itself, counts the
walks of length 2 between them (shared-nearest-neighbour weighting: an edge inside a dense region
has many, an edge that bridges two has few), raised to the power ``s = shared`` (0: unweighted;
``True`` is 1). ``S`` is needed on the ``<= 2nk`` edges of ``A + A^T`` only, so it is counted
there, ``S_ij = sum_{a,b} [N(i)_a = N(j)_b]`` over the two lists of ``k + 1`` (a multiset
count: ``(M M^T)_ij`` for ``M_il`` = how often ``l`` is in ``N(i)``, so a point listed twice by
an approximate search counts as in the product), in chunks of edges: memory ``O(n k)``, not the
``O(sum_l indegree(l)^2) >= O(n k^2)`` of forming ``M M^T``; the price is ``(k + 1)^2``
vectorised comparisons an edge, ``O(n k^3)`` time (the product's is ``O(n k^2)``), so for
``k + 1 > 32`` (the Gaussian affinity's ``k = 90``) ``M M^T`` is formed a block of rows at a
time instead and read at the edges, memory ``O(n k)`` again,

and the supervisory distribution is the propagated graph, a uniform mixture of walk lengths,

    p(j|i) = 1/L sum_{t=1..L} P1^t(j|i)      (I-Con's "neighbours of neighbours" for L >= 2).

``p`` is never formed (``P1^t`` has up to ``(2k)^t`` entries a row, too many at a million
points): :meth:`SupervisoryGraph.walk` draws ``j ~ p(.|i)`` exactly by walking ``t ~ U{1..L}``
steps, ``O(L)`` per draw, so memory stays ``O(n k)``. A walk that returns to its start ends at
its first step instead (self-pairs carry no information).
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from rkdo.calibration import calibrate_gaussian
from rkdo.estimators._knn import knn_search
from rkdo.estimators._user_warning import warn_user

__all__ = ["SupervisoryGraph", "shared_counts"]

_CHUNK = 1 << 23  # neighbour-list entries of one side gathered at once (32 MiB of int32)
# above this list length (k + 1) the (k + 1)^2 comparisons an edge cost more than the product
# M M^T formed a block of rows at a time (Fashion-MNIST 10k, one core: equal near k = 30; at
# k = 90, the Gaussian affinity's, 4.9 s against 0.7 s)
_PAIRWISE_UP_TO = 32


def shared_counts(indices: np.ndarray, indptr: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``S_ij = |N(i) ∩ N(j)|`` (module docstring) for every stored entry ``(i, j)`` of the CSR
    structure ``(indptr, columns)``, in its order; ``indices`` ``(n, k)`` are the k nearest of
    each point. Entries are counted with multiplicity, exactly the ``(i, j)`` entry of
    ``M M^T`` for ``M`` the ``(n, n)`` matrix that counts how often ``l`` is listed in ``N(i)``."""
    n, k = indices.shape
    counts = np.empty(len(columns), dtype=np.min_scalar_type((k + 1) ** 2))
    if k + 1 > _PAIRWISE_UP_TO:
        return _counts_by_product(indices, indptr, columns, counts)
    dtype = np.int32 if n < np.iinfo(np.int32).max else np.int64
    # one neighbour list a row of (k + 1, n), so one position of all lists is contiguous
    lists = np.concatenate([indices, np.arange(n)[:, None]], axis=1).astype(dtype)
    lists = np.ascontiguousarray(lists.T)
    step = max(1, _CHUNK // (k + 1))
    row_of = np.searchsorted(indptr, np.arange(0, len(columns), step), side="right") - 1
    for number, start in enumerate(range(0, len(columns), step)):
        stop = min(start + step, len(columns))
        first = row_of[number]
        last = np.searchsorted(indptr, stop - 1, side="right") - 1
        rows = np.repeat(np.arange(first, last + 1), np.diff(
            np.clip(indptr[first:last + 2], start, stop)))
        left = np.take(lists, rows, axis=1)
        right = np.take(lists, columns[start:stop], axis=1)
        total = np.zeros(stop - start, dtype=counts.dtype)
        same = np.empty(stop - start, dtype=bool)
        for a in range(k + 1):
            for b in range(k + 1):
                total += np.equal(left[a], right[b], out=same)
        counts[start:stop] = total
    return counts


def _counts_by_product(indices: np.ndarray, indptr: np.ndarray, columns: np.ndarray,
                       counts: np.ndarray) -> np.ndarray:
    """:func:`shared_counts` for long lists: ``M M^T`` a block of rows at a time (about
    ``_CHUNK`` entries a block), read at the edges of the block's rows."""
    n, k = indices.shape
    member = sp.csr_matrix((np.ones(n * k), (np.repeat(np.arange(n), k), indices.ravel())),
                           shape=(n, n)) + sp.identity(n, format="csr")
    transposed = member.T.tocsr()
    step = max(1, _CHUNK // (k + 1) ** 2)
    for first in range(0, n, step):
        last = min(first + step, n)
        block = member[first:last] @ transposed
        block.sum_duplicates()
        start, stop = indptr[first], indptr[last]
        rows = np.repeat(np.arange(last - first), np.diff(indptr[first:last + 1]))
        counts[start:stop] = np.asarray(block[rows, columns[start:stop]]).ravel()
    return counts


class SupervisoryGraph:
    """``P1`` as CSR tensors (``indptr``, ``indices``, row-cumulative weights) and its walks."""

    def __init__(self, matrix: sp.csr_matrix, walk_length: int, *,
                 n_neighbors: int | None = None) -> None:
        self.n_neighbors = n_neighbors  # the k of the k-NN graph, when built by :meth:`build`
        matrix = sp.csr_matrix(matrix, dtype=np.float64)
        if matrix.has_canonical_format:
            # what setdiag(0) + eliminate_zeros leave of a canonical matrix, order kept, without
            # the COO round trip setdiag takes to insert n zeros (~3 copies of the graph)
            rows = np.repeat(np.arange(matrix.shape[0], dtype=matrix.indices.dtype),
                             np.diff(matrix.indptr))
            keep = (matrix.indices != rows) & (matrix.data != 0.0)
            del rows
            if not keep.all():  # (a k-NN graph's has no diagonal unless a point lists itself)
                kept = np.zeros(len(keep) + 1, dtype=matrix.indptr.dtype)
                np.cumsum(keep, out=kept[1:])
                matrix = sp.csr_matrix((matrix.data[keep], matrix.indices[keep],
                                        kept[matrix.indptr]), shape=matrix.shape)
        else:
            matrix.setdiag(0.0)
            matrix.eliminate_zeros()
        degree = np.asarray(matrix.sum(1)).ravel()
        self.symmetric = matrix
        self.degree = degree
        matrix = sp.csr_matrix(sp.diags(1.0 / np.maximum(degree, 1e-300)) @ matrix)
        self.n = matrix.shape[0]
        self.walk_length = walk_length
        self.indptr = torch.from_numpy(matrix.indptr.astype(np.int64))
        self.indices = torch.from_numpy(matrix.indices.astype(np.int64))
        # each row sums to one, so the global running sum crosses row r's entries in [r, r + 1)
        self.cumulative = torch.from_numpy(np.cumsum(matrix.data))

    @classmethod
    def build(cls, x: np.ndarray, *, affinity: str, n_neighbors: int, perplexity: float,
              walk_length: int, shared: float, random_state: int) -> SupervisoryGraph:
        """The graph of the rows of ``x`` (dense or sparse); ``n_neighbors`` is clipped to
        ``n - 1`` with a warning (a graph that links every point to all others says nothing)."""
        n = x.shape[0]
        k = n_neighbors if affinity == "knn" else max(2, int(3 * perplexity))
        if k > n - 1:
            name = "n_neighbors" if affinity == "knn" else "3 x perplexity"
            warn_user(f"{name} = {k} exceeds n_samples - 1 = {n - 1}; clipped to {n - 1}, "
                      "so every point neighbours every other and the graph carries no "
                      "cluster information: lower it")
            k = n - 1
        indices, sq = knn_search(x, k, random_state)
        if affinity == "knn":
            weights = np.full(indices.shape, 1.0 / k)
        else:
            level = min(perplexity, 0.5 * k, k - 1e-3)
            weights = calibrate_gaussian(torch.from_numpy(sq), max(level, 1.0 + 1e-3)).exp()
            weights = weights.numpy()
        del sq  # O(n k) arrays are let go as soon as they are used, for the peak at large n
        rows = np.repeat(np.arange(n), k)
        adjacency = sp.csr_matrix((weights.ravel(), (rows, indices.ravel())), shape=(n, n))
        del weights, rows
        symmetric = (adjacency + adjacency.T) * 0.5
        del adjacency
        if shared:
            symmetric.sum_duplicates()
            counts = shared_counts(indices, symmetric.indptr, symmetric.indices)
            factor = counts.astype(np.float64)
            symmetric.data *= np.power(factor, float(shared), out=factor)
        return cls(symmetric, walk_length, n_neighbors=k)

    def spectral(self, n_components: int, random_state: int) -> np.ndarray:
        """``(n, n_components)`` leading eigenvectors of ``D^-1/2 W D^-1/2`` mapped back by
        ``D^-1/2`` (those of ``P1``), rows scaled to unit length: the spectral-clustering
        embedding of the graph."""
        from scipy.sparse.csgraph import connected_components
        from scipy.sparse.linalg import eigsh, lobpcg

        root = 1.0 / np.sqrt(np.maximum(self.degree, 1e-300))
        normalised = sp.diags(root) @ self.symmetric @ sp.diags(root)
        start = np.random.default_rng(random_state).standard_normal(self.n)
        k = min(n_components, self.n - 1)
        if self.n <= 4 * k:
            _, vectors = np.linalg.eigh(normalised.toarray())
            vectors = vectors[:, -k:]
        elif connected_components(self.symmetric, directed=False, return_labels=False) > 1:
            # eigenvalue 1 once per piece of the graph: the Krylov space of one Lanczos start
            # vector holds one direction of that eigenspace, a block of k start vectors all
            block = np.random.default_rng(random_state).standard_normal((self.n, k))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                _, vectors = lobpcg(normalised, block, largest=True, tol=1e-4, maxiter=500)
        else:
            _, vectors = eigsh(normalised, k=k, which="LA", tol=1e-4, v0=start)
        embedding = vectors * root[:, None]
        return embedding / np.maximum(np.linalg.norm(embedding, axis=1, keepdims=True), 1e-300)

    def step(self, start: Tensor, generator: torch.Generator) -> Tensor:
        """One draw ``j ~ P1(.|i)`` for each ``i`` in ``start``."""
        target = start.to(torch.float64) + torch.rand(start.shape, generator=generator,
                                                      dtype=torch.float64)
        position = torch.searchsorted(self.cumulative, target, right=True)
        low, high = self.indptr[start], self.indptr[start + 1] - 1
        return self.indices[torch.minimum(torch.maximum(position, low), high)]

    def walk(self, start: Tensor, generator: torch.Generator) -> Tensor:
        """One draw ``j ~ p(.|i)`` (module docstring) for each ``i`` in ``start``."""
        lengths = torch.randint(1, self.walk_length + 1, start.shape, generator=generator)
        first = self.step(start, generator)
        here = first
        for t in range(2, self.walk_length + 1):
            moved = self.step(here, generator)
            here = torch.where(lengths >= t, moved, here)
        return torch.where(here == start, first, here)
