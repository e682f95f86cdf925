"""``KernelClustering``: I-Con's clustering row, soft assignments fitted to a neighbour graph.

A linear map of the centred inputs (one global scale) gives soft assignments
``f(c|i) = softmax_c(W x_i + b)``, and the clustering kernel of I-Con (as
:class:`rkdo.kernels.Cluster`, over the inputs here)

    q(j|i) = sum_c f(c|i) f(c|j) / N_c,   N_c = sum_k f(c|k),   self-pairs removed,

says "pick a cluster of i, then a member in proportion to its responsibility". The supervisory
``p(j|i)`` is uniform over the ``k`` nearest inputs (``affinity="knn"``) or the core's
perplexity-calibrated Gaussian on the ``3 x perplexity`` nearest (``"gaussian"``). Both are
debiased as in I-Con: ``p' = (1 - a) p + a / (n - 1)`` and ``q' = (1 - b) q + b / (n - 1)``. The
loss is the cross-entropy ``1/n sum_i sum_j p'(j|i) (-log q'(j|i))`` (``KL(p' || q')`` plus the
constant entropy of ``p'``); its uniform part is summed over all pairs for ``n <= 1024`` and
estimated with ``n_negatives`` uniform samples per point above.

Recursive target (``alpha > 0``): ``p(t) = (1 - alpha) p' + alpha s(t-1)`` with ``s(j|i)`` the
model's own sharpened kernel, uniform over the members of ``i``'s current hard cluster
(detached; estimated with ``n_negatives`` members per point).

Minimising ``-sum p log q`` over assignments favours clusters that contain each point's
neighbours and are small (``q(j|i) ~ 1 / N_c``), so the clusters it finds are balanced graph
cuts; several restarts (``n_init``) keep the lowest final loss.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils.validation import check_is_fitted, check_random_state, validate_data
from torch import Tensor
from tqdm.auto import tqdm

from rkdo._validation import check_choice, check_int, check_positive, check_unit_interval
from rkdo.estimators._affinity import knn_graph
from rkdo.kernels import calibrate_gaussian

__all__ = ["KernelClustering", "AFFINITIES"]

AFFINITIES = ("knn", "gaussian")
_DENSE_LIMIT = 1024


def _log_q(f: Tensor, mass: Tensor, anchors: Tensor, others: Tensor, debias: float) -> Tensor:
    """``log q'(j|i)`` for index pairs ``(anchors, others)`` of any equal shape, ``j != i``."""
    log_self = torch.log1p(-(f.square() / mass).sum(-1).clamp_max(1.0 - 1e-7))
    q = (f[anchors] * f[others] / mass).sum(-1)
    log_q = torch.log(q.clamp_min(1e-30)) - log_self[anchors]
    if debias == 0.0:
        return log_q
    n = f.shape[0]
    return torch.logaddexp(log_q + math.log1p(-debias),
                           torch.full_like(log_q, math.log(debias / (n - 1))))


def _log_q_dense(f: Tensor, mass: Tensor, debias: float) -> Tensor:
    """``(n, n)`` ``log q'(j|i)``; the diagonal is meaningless (callers mask it)."""
    n = f.shape[0]
    log_self = torch.log1p(-(f.square() / mass).sum(-1).clamp_max(1.0 - 1e-7))
    log_q = torch.log(((f / mass) @ f.T).clamp_min(1e-30)) - log_self[:, None]
    if debias == 0.0:
        return log_q
    return torch.logaddexp(log_q + math.log1p(-debias),
                           torch.full_like(log_q, math.log(debias / (n - 1))))


class KernelClustering(ClusterMixin, BaseEstimator):
    """Clustering by I-Con's KL between a neighbour graph and a clustering kernel.

    Parameters:
        n_clusters: number of clusters.
        affinity: ``"knn"`` or ``"gaussian"`` (module docstring).
        n_neighbors, perplexity: of the k-NN and the Gaussian affinity.
        debias_p, debias_q: uniform leaks ``a``, ``b`` in [0, 1).
        alpha: weight of the recursive sharpened target (0: static I-Con).
        max_iter, learning_rate: Adam steps on the full data and their step size.
        n_init: restarts; the lowest final loss wins.
        n_negatives: uniform samples per point for the uniform parts when ``n > 1024``.
        random_state, device, verbose: seed, torch device, progress bar.

    Attributes: ``labels_``, ``cluster_centers_`` (responsibility-weighted input means),
    ``loss_curve_`` (cross-entropy per step of the kept restart), ``n_iter_``.
    """

    def __init__(self, n_clusters: int = 10, *, affinity: str = "knn", n_neighbors: int = 10,
                 perplexity: float = 30.0, debias_p: float = 0.0, debias_q: float = 0.0,
                 alpha: float = 0.0, max_iter: int = 300, learning_rate: float = 0.05,
                 n_init: int = 4, n_negatives: int = 64, random_state: int | None = None,
                 device: str = "cpu", verbose: bool = False) -> None:
        self.n_clusters = n_clusters
        self.affinity = affinity
        self.n_neighbors = n_neighbors
        self.perplexity = perplexity
        self.debias_p = debias_p
        self.debias_q = debias_q
        self.alpha = alpha
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.n_init = n_init
        self.n_negatives = n_negatives
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def _check_params(self, n: int) -> None:
        check_int("n_clusters", self.n_clusters, low=1, high=n)
        check_choice("affinity", self.affinity, AFFINITIES)
        check_int("n_neighbors", self.n_neighbors, low=1)
        check_positive("perplexity", self.perplexity)
        check_unit_interval("debias_p", self.debias_p, high_open=True)
        check_unit_interval("debias_q", self.debias_q, high_open=True)
        check_unit_interval("alpha", self.alpha, high_open=True)
        check_int("max_iter", self.max_iter, low=1)
        check_positive("learning_rate", self.learning_rate)
        check_int("n_init", self.n_init, low=1)
        check_int("n_negatives", self.n_negatives, low=1)

    def _graph(self, x: np.ndarray, seed: int) -> tuple[Tensor, Tensor]:
        """``(neighbours, p)``, both ``(n, k)``: the supervisory graph, rows summing to one."""
        n = x.shape[0]
        if self.affinity == "knn":
            k = min(self.n_neighbors, n - 1)
            indices, _ = knn_graph(x, k, seed)
            return torch.from_numpy(indices), torch.full(indices.shape, 1.0 / k)
        k = min(n - 1, max(2, int(3 * self.perplexity)))
        indices, sq = knn_graph(x, k, seed)
        perplexity = min(self.perplexity, 0.5 * k)
        log_p = calibrate_gaussian(torch.from_numpy(sq), max(perplexity, 1.0 + 1e-3))
        return torch.from_numpy(indices), log_p.exp()

    def _loss(self, f: Tensor, graph: tuple[Tensor, Tensor], uniform: Tensor | None,
              target: Tensor | None) -> Tensor:
        neighbours, p = graph
        n = f.shape[0]
        mass = f.sum(0)
        anchors = torch.arange(n, device=f.device)[:, None]
        edges = -(p * _log_q(f, mass, anchors, neighbours, self.debias_q)).sum(-1)
        loss = (1.0 - self.debias_p) * edges.mean()
        if self.debias_p > 0.0:
            if uniform is None:  # every pair: q as one (n, C) x (C, n) product
                log_q = _log_q_dense(f, mass, self.debias_q)
                other = ~torch.eye(n, dtype=torch.bool, device=f.device)
            else:
                log_q = _log_q(f, mass, anchors.expand_as(uniform), uniform, self.debias_q)
                other = uniform != anchors
            spread = -(log_q * other).sum(-1) / other.sum(-1).clamp_min(1)
            loss = loss + self.debias_p * spread.mean()
        if target is not None:
            sharp = -_log_q(f, mass, anchors.expand_as(target), target, self.debias_q).mean(-1)
            loss = (1.0 - self.alpha) * loss + self.alpha * sharp.mean()
        return loss

    def _members(self, labels: Tensor, generator: torch.Generator) -> Tensor:
        """``n_negatives`` random members of each point's hard cluster, ``(n, m)``."""
        order = torch.argsort(labels)
        counts = torch.bincount(labels, minlength=self.n_clusters)
        starts = torch.cumsum(counts, 0) - counts
        own = labels[:, None]
        draw = torch.rand(labels.shape[0], self.n_negatives, generator=generator)
        offset = (draw * counts[own]).long().clamp_max(counts[own] - 1)
        return order[starts[own] + offset]

    def _uniform(self, n: int, generator: torch.Generator) -> Tensor | None:
        if n <= _DENSE_LIMIT:
            return None
        return torch.randint(0, n, (n, self.n_negatives), generator=generator)

    def _fit_once(self, x: Tensor, graph: tuple[Tensor, Tensor], seed: int
                  ) -> tuple[float, Tensor, list[float]]:
        generator = torch.Generator().manual_seed(seed)
        weight = (torch.randn(x.shape[1], self.n_clusters, generator=generator, dtype=x.dtype)
                  / math.sqrt(x.shape[1])).requires_grad_(True)
        bias = torch.zeros(self.n_clusters, dtype=x.dtype, requires_grad=True)
        optimiser = torch.optim.Adam([weight, bias], lr=self.learning_rate)
        curve: list[float] = []
        for _ in tqdm(range(self.max_iter), disable=not self.verbose, desc="clustering"):
            f = torch.softmax(x @ weight + bias, dim=-1)
            target = None
            if self.alpha > 0.0:
                target = self._members(f.detach().argmax(-1), generator)
            loss = self._loss(f, graph, self._uniform(x.shape[0], generator), target)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            curve.append(float(loss.detach()))
        return curve[-1], torch.cat([weight.detach(), bias.detach()[None]]), curve

    def fit(self, X, y=None) -> KernelClustering:
        """Learn the assignments; ``labels_`` are their argmax on ``X``."""
        x = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        self._check_params(x.shape[0])
        rng = check_random_state(self.random_state)
        self.mean_ = x.mean(0)
        # one scale for all features: per-feature scaling would blow up near-constant pixels
        spread = float((x - self.mean_).std())
        self.scale_ = spread if spread > 0 else 1.0
        standard = torch.from_numpy((x - self.mean_) / self.scale_).float().to(self.device)
        graph = tuple(t.to(self.device, dtype) for t, dtype in
                      zip(self._graph(x, int(rng.randint(2**31 - 1))),
                          (torch.int64, torch.float32), strict=True))
        best = None
        for _ in range(self.n_init):
            run = self._fit_once(standard, graph, int(rng.randint(2**31 - 1)))
            if best is None or run[0] < best[0]:
                best = run
        _, self.coef_, self.loss_curve_ = best
        responsibilities = self._responsibilities(standard)
        self.labels_ = responsibilities.argmax(-1).cpu().numpy()
        weights = responsibilities.cpu().double().numpy()
        self.cluster_centers_ = (weights.T @ x) / np.maximum(weights.sum(0), 1e-12)[:, None]
        self.n_iter_ = int(self.max_iter)
        return self

    def _responsibilities(self, standard: Tensor) -> Tensor:
        coef = self.coef_.to(standard.device)
        return torch.softmax(standard @ coef[:-1] + coef[-1], dim=-1)

    def predict_proba(self, X) -> np.ndarray:
        """Soft assignments ``f(c|x)``, ``(n, n_clusters)``."""
        check_is_fitted(self, "coef_")
        x = validate_data(self, X, dtype=np.float64, reset=False)
        standard = torch.from_numpy((x - self.mean_) / self.scale_).float().to(self.device)
        return self._responsibilities(standard).cpu().double().numpy()

    def predict(self, X) -> np.ndarray:
        """The most responsible cluster of each row of ``X``."""
        return self.predict_proba(X).argmax(-1)
