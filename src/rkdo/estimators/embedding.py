"""``NeighbourEmbedding``: t-SNE, SNE and the InfoNCE neighbour embedding as one estimator.

I-Con's objective with an input affinity ``P`` and a learned kernel on the embedding ``y``:

    t-SNE:    KL(P || Q),  P_ij = (p(j|i) + p(i|j)) / 2n,  Q_ij = w_ij / sum_{k != l} w_kl,
    SNE:      1/n sum_i KL(p(.|i) || q(.|i)),  q(j|i) ∝ exp(-|y_i - y_j|^2),
    InfoNCE:  1/n sum_i KL(P(.|i) || q(.|i)),  q(j|i) ∝ w_ij  (every other point a negative),

with ``p(j|i)`` the perplexity-calibrated Gaussian of the core and the Student-t kernel
``w_ij = (1 + |y_i - y_j|^2 / nu)^(-(nu + 1) / 2)``. The optimiser is the field's: PCA
initialisation scaled to standard deviation 1e-4, early exaggeration (12 for 250 iterations,
momentum 0.5, then 0.8), learning rate ``max(n / e / 4, 50)`` with ``e`` the exaggeration of
the current phase (openTSNE's choice: 12x larger after early exaggeration than scikit-learn's
fixed ``n / 48``, which leaves 500 iterations short of convergence) and per-coordinate gains
(delta-bar-delta: +0.2 where the gradient changes sign, x0.8 elsewhere, at least 0.01).

``method="exact"`` evaluates all pairs (O(n^2)); ``"fft"`` (t-SNE only) uses a k-NN ``P`` with
``3 x perplexity`` neighbours and interpolated repulsion (O(n) per step); ``"auto"`` picks fft
above 1,000 points; ``"sampled"`` (InfoNCE, and ``objective="neg"``, UMAP-like; chosen by
``"auto"`` for InfoNCE above 1,000 points) draws positive pairs from the k-NN ``P`` and ``m = 5``
uniform negatives per pair, O(n) per epoch, for millions of points
(:mod:`rkdo.estimators._sampling`; ``max_iter // 5`` SGD epochs, ``kl_divergence_`` is NaN).
The recursive teacher (RKDO in the full-batch setting) replaces ``P`` after
early exaggeration by ``P(t) = (1 - alpha_t) P(t-1) + alpha_t Q(t-1)`` at every iteration,
``alpha_t`` from :func:`rkdo.schedules.alpha_schedule` (decaying to 0 for non-constant
schedules); ``kl_divergence_`` is always measured against the static ``P(0)``.
``parametric=True`` learns an MLP ``y = f(x)`` (Adam) instead of free points, so ``transform``
can place new points.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, check_random_state, validate_data
from torch import Tensor, nn
from tqdm.auto import tqdm

from rkdo._validation import check_choice, check_int, check_positive, check_unit_interval
from rkdo.estimators._affinity import conditional_dense, joint_dense, joint_sparse
from rkdo.estimators._gradients import DenseCost, SparseCost
from rkdo.estimators._sampling import sampled_embedding
from rkdo.kernels import GaussianEmbedding, StudentT
from rkdo.schedules import ALPHA_SCHEDULES, alpha_schedule

__all__ = ["NeighbourEmbedding", "OBJECTIVES", "METHODS"]

OBJECTIVES = ("tsne", "sne", "infonce", "neg")
METHODS = ("auto", "exact", "fft", "sampled")
_EXACT_LIMIT = 1000
# SNE's Gaussian has no heavy tail: attraction is a linear spring and the t-SNE step overshoots
_SNE_DAMPING = {"sne": 10.0}


def _mlp(n_features: int, hidden: tuple[int, ...], n_components: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = n_features
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    layers.append(nn.Linear(width, n_components))
    return nn.Sequential(*layers)


# no set_output wrapping: it would hide that ``transform`` exists only when parametric
class NeighbourEmbedding(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """Neighbour embedding by I-Con's KL objective (module docstring has the equations).

    Parameters:
        n_components: embedding dimension (fft: 2 only).
        objective: ``"tsne"``, ``"sne"`` or ``"infonce"``.
        perplexity: effective number of input neighbours, in (1, n - 1).
        dof: degrees of freedom ``nu`` of the Student-t kernel.
        method: ``"auto"``, ``"exact"`` or ``"fft"``.
        max_iter: optimisation steps, early exaggeration included.
        early_exaggeration, early_exaggeration_iter: ``e`` and its number of steps.
        learning_rate: ``"auto"`` (``max(n / e / 4, 50)`` per phase, a tenth of it for SNE;
            Adam's 1e-3 when parametric) or > 0.
        init: ``"pca"`` or ``"random"``.
        alpha, alpha_schedule: the recursive teacher's rate and its schedule.
        parametric, hidden_layer_sizes: learn an MLP ``x -> y`` with these hidden widths.
        random_state, device, verbose: seed, torch device, progress bar.

    Attributes: ``embedding_``, ``kl_divergence_``, ``n_iter_``, ``history_`` (one dict every
    50 steps: ``iteration``, ``kl`` against the current target, ``alpha``), ``learning_rate_``.
    """

    def __init__(self, n_components: int = 2, *, objective: str = "tsne",
                 perplexity: float = 30.0, dof: float = 1.0, method: str = "auto",
                 max_iter: int = 750, early_exaggeration: float = 12.0,
                 early_exaggeration_iter: int = 250, learning_rate: float | str = "auto",
                 init: str = "pca", alpha: float = 0.0, alpha_schedule: str = "constant",
                 parametric: bool = False, hidden_layer_sizes: tuple[int, ...] = (256, 256),
                 random_state: int | None = None, device: str = "cpu",
                 verbose: bool = False) -> None:
        self.n_components = n_components
        self.objective = objective
        self.perplexity = perplexity
        self.dof = dof
        self.method = method
        self.max_iter = max_iter
        self.early_exaggeration = early_exaggeration
        self.early_exaggeration_iter = early_exaggeration_iter
        self.learning_rate = learning_rate
        self.init = init
        self.alpha = alpha
        self.alpha_schedule = alpha_schedule
        self.parametric = parametric
        self.hidden_layer_sizes = hidden_layer_sizes
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def _check_params(self, n: int) -> str:
        check_int("n_components", self.n_components, low=1)
        check_choice("objective", self.objective, OBJECTIVES)
        check_choice("method", self.method, METHODS)
        check_choice("init", self.init, ("pca", "random"))
        check_choice("alpha_schedule", self.alpha_schedule, ALPHA_SCHEDULES)
        check_positive("dof", self.dof)
        check_positive("early_exaggeration", self.early_exaggeration)
        check_int("max_iter", self.max_iter, low=1)
        check_int("early_exaggeration_iter", self.early_exaggeration_iter, low=0)
        check_unit_interval("alpha", self.alpha)
        if self.learning_rate != "auto":
            check_positive("learning_rate", self.learning_rate)
        for size in self.hidden_layer_sizes:
            check_int("hidden_layer_sizes", size, low=1)
        if not (check_positive("perplexity", self.perplexity) > 1.0 and self.perplexity < n - 1):
            raise ValueError(f"perplexity must lie in (1, {n - 1}) for {n} samples, "
                             f"got {self.perplexity!r}")
        method = self.method
        if method == "auto":
            small = n <= _EXACT_LIMIT or self.objective != "tsne" or self.n_components != 2
            method = "exact" if small else "fft"
            if self.objective == "neg" or (self.objective == "infonce" and n > _EXACT_LIMIT
                                           and self.n_components == 2):
                method = "sampled"
        if (method == "sampled" and self.objective not in ("infonce", "neg")) or (
                self.objective == "neg" and method != "sampled"):
            raise ValueError("method='sampled' is for objective='infonce' or 'neg', and 'neg' "
                             "has no other method; use method='auto'")
        if method == "sampled" and (self.n_components != 2 or self.parametric):
            raise ValueError("method='sampled' embeds free points in 2-D only; "
                             "use n_components=2 and parametric=False")
        if method == "fft" and (self.objective != "tsne" or self.n_components != 2):
            raise ValueError("method='fft' supports objective='tsne' with n_components=2 only; "
                             "use method='exact'")
        return method

    def _objective(self, x: np.ndarray, method: str, device: torch.device):
        if method == "fft":
            k = min(x.shape[0] - 1, int(3 * self.perplexity))
            affinity = joint_sparse(x, self.perplexity, k, self._seed)
            return SparseCost(affinity, self.dof, device), torch.float32
        xt = torch.from_numpy(np.array(x)).to(device)
        if self.objective == "tsne":
            log_p = joint_dense(xt, self.perplexity).log()
            return DenseCost(log_p, StudentT(self.dof), joint=True), torch.float64
        if self.objective == "sne":
            log_p = conditional_dense(xt, self.perplexity)
            return DenseCost(log_p, GaussianEmbedding(1.0), joint=False), torch.float64
        joint = joint_dense(xt, self.perplexity)
        log_p = (joint / joint.sum(dim=1, keepdim=True)).log()
        return DenseCost(log_p, StudentT(self.dof), joint=False), torch.float64

    def _initial(self, x: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
        n = x.shape[0]
        if self.init == "pca" and min(x.shape) >= self.n_components:
            y = PCA(self.n_components, svd_solver="randomized", random_state=rng).fit_transform(x)
            return y / max(float(np.std(y[:, 0])), 1e-12) * 1e-4
        return 1e-4 * rng.standard_normal((n, self.n_components))

    def _alpha(self, step: int, total: int) -> float:
        if self.alpha == 0.0 or step < self.early_exaggeration_iter:
            return 0.0
        schedule = alpha_schedule(self.alpha_schedule, self.alpha, max(total, 1),
                                  final=self.alpha if self.alpha_schedule == "constant" else 0.0)
        return schedule(step - self.early_exaggeration_iter)

    def _phase(self, step: int) -> tuple[float, float]:
        if step < self.early_exaggeration_iter:
            return self.early_exaggeration, 0.5
        return 1.0, 0.8

    def _descend(self, objective, y: Tensor, n: int) -> Tensor:
        """The gains-and-momentum descent on free points; returns the final ``y``."""
        update, gains = torch.zeros_like(y), torch.ones_like(y)
        total = self.max_iter - self.early_exaggeration_iter
        for step in tqdm(range(self.max_iter), disable=not self.verbose, desc="embedding"):
            exaggeration, momentum = self._phase(step)
            rate = self.learning_rate
            if rate == "auto":
                rate = max(n / exaggeration / 4.0, 50.0) / _SNE_DAMPING.get(self.objective, 1.0)
            self.learning_rate_ = float(rate)
            if step == self.early_exaggeration_iter:
                update, gains = torch.zeros_like(y), torch.ones_like(y)
            kl, grad = objective.gradient(y, exaggeration)
            same = (update * grad) >= 0.0
            gains = torch.where(same, gains * 0.8, gains + 0.2).clamp_min_(0.01)
            update = momentum * update - self.learning_rate_ * gains * grad
            y = y + update
            self._record(step, kl, objective, self._alpha(step, total))
        return y

    def _train_network(self, objective, x: Tensor) -> Tensor:
        """Adam on an MLP whose output is the embedding; the objective's gradient is pulled
        back through it."""
        torch.manual_seed(self._seed)
        self.network_ = _mlp(x.shape[1], tuple(self.hidden_layer_sizes),
                             self.n_components).to(x.device, x.dtype)
        rate = 1e-3 if self.learning_rate == "auto" else float(self.learning_rate)
        self.learning_rate_ = rate
        optimiser = torch.optim.Adam(self.network_.parameters(), lr=rate)
        total = self.max_iter - self.early_exaggeration_iter
        for step in tqdm(range(self.max_iter), disable=not self.verbose, desc="embedding"):
            exaggeration, _ = self._phase(step)
            y = self.network_(x)
            kl, grad = objective.gradient(y.detach(), exaggeration)
            optimiser.zero_grad()
            y.backward(grad)
            optimiser.step()
            self._record(step, kl, objective, self._alpha(step, total))
        with torch.no_grad():
            return self.network_(x)

    def _record(self, step: int, kl: float, objective, alpha: float) -> None:
        if step % 50 == 0 or step == self.max_iter - 1:
            self.history_.append({"iteration": step, "kl": kl, "alpha": alpha})
        if not math.isfinite(kl):
            advice = ("lower learning_rate" if step else "no step was taken yet, so not the "
                      "learning rate: the input affinities are degenerate; report the data")
            raise FloatingPointError(f"the objective diverged at iteration {step}; {advice}")
        objective.teacher_step(alpha)

    def fit(self, X, y=None) -> NeighbourEmbedding:
        """Embed ``X``; the result is ``embedding_``."""
        self.fit_transform(X)
        return self

    def fit_transform(self, X, y=None) -> np.ndarray:
        """Embed ``X`` and return ``embedding_``, ``(n, n_components)``."""
        x = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        method = self._check_params(x.shape[0])
        rng = check_random_state(self.random_state)
        self._seed = int(rng.randint(2**31 - 1))
        if method == "sampled":
            return self._fit_sampled(x, rng)
        device = torch.device(self.device)
        objective, dtype = self._objective(x, method, device)
        self.history_: list[dict[str, float]] = []
        if self.parametric:
            inputs = torch.from_numpy(np.array(x)).to(device, dtype)
            embedding = self._train_network(objective, inputs)
        else:
            start = torch.from_numpy(self._initial(x, rng)).to(device, dtype)
            embedding = self._descend(objective, start, x.shape[0])
        self.method_ = method
        self.n_iter_ = int(self.max_iter)
        self.kl_divergence_ = objective.static_kl(embedding)
        self.embedding_ = embedding.detach().cpu().numpy().astype(np.float64)
        return self.embedding_

    def _fit_sampled(self, x: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
        """Negative sampling (:mod:`rkdo.estimators._sampling`): ``max_iter // 5`` epochs."""
        k = min(x.shape[0] - 1, int(3 * self.perplexity))
        affinity = joint_sparse(x, self.perplexity, k, self._seed)
        self.embedding_ = sampled_embedding(
            affinity, self._initial(x, rng), loss=self.objective, seed=self._seed,
            epochs=max(1, self.max_iter // 5))
        self.method_, self.n_iter_, self.history_ = "sampled", max(1, self.max_iter // 5), []
        self.kl_divergence_ = float("nan")  # InfoNCE over all n points is not evaluated
        return self.embedding_

    @available_if(lambda self: bool(self.parametric))
    def transform(self, X) -> np.ndarray:
        """Place new points with the learned network (``parametric=True`` only)."""
        check_is_fitted(self, "network_")
        x = validate_data(self, X, dtype=np.float64, reset=False)
        parameter = next(self.network_.parameters())
        with torch.no_grad():
            y = self.network_(torch.tensor(x, device=parameter.device, dtype=parameter.dtype))
        return y.cpu().numpy().astype(np.float64)
