"""``NeighbourEmbedding``: t-SNE, SNE and the InfoNCE neighbour embedding as one estimator.

I-Con's objective with an input affinity ``P`` and a learned kernel on the embedding ``y``:

    t-SNE:    KL(P || Q),  P_ij = (p(j|i) + p(i|j)) / 2n,  Q_ij = w_ij / sum_{k != l} w_kl,
    SNE:      1/n sum_i KL(p(.|i) || q(.|i)),  q(j|i) ∝ exp(-|y_i - y_j|^2),
    InfoNCE:  1/n sum_i KL(P(.|i) || q(.|i)),  q(j|i) ∝ w_ij  (every other point a negative),

with ``p(j|i)`` an input affinity (:mod:`rkdo.estimators.affinities`; by default the
perplexity-calibrated Gaussian under ``metric``) and the Student-t kernel
``w_ij = (1 + |y_i - y_j|^2 / nu)^(-(nu + 1) / 2)``. The optimiser is the field's: PCA
initialisation scaled to standard deviation 1e-4, early exaggeration (12 for 250 iterations,
momentum 0.5, then 0.8), learning rate ``max(n / e / 4, 50)`` with ``e`` the exaggeration of
the current phase (openTSNE's choice: 12x larger after early exaggeration than scikit-learn's
fixed ``n / 48``, which leaves 500 iterations short of convergence) and per-coordinate gains
(delta-bar-delta: +0.2 where the gradient changes sign, x0.8 elsewhere, at least 0.01). Each
point's step is clipped to norm ``max_step_norm`` (openTSNE's ``max_step_norm``, 5 by default):
no point can jump further per iteration, so the embedding's span, and with it the FFT grid, grows
by at most ``2 max_step_norm`` per step; the clip acts only when a step would overshoot (a large
learning rate on few points) and leaves ordinary runs unchanged.

``method="exact"`` evaluates all pairs (O(n^2) time and about ``128 n^2`` bytes, checked against
free memory before anything is allocated); ``"fft"`` (t-SNE in 2-D only) uses a k-NN ``P`` with
``3 x perplexity`` neighbours and interpolated repulsion (O(n) per step); ``"auto"`` picks fft
above 1,000 points; ``"sampled"`` (InfoNCE, and ``objective="neg"``, UMAP-like; chosen by
``"auto"`` for InfoNCE above 1,000 points) draws positive pairs from the k-NN ``P`` and ``m = 5``
uniform negatives per pair, O(n) per epoch, for millions of points
(:mod:`rkdo.estimators._sampling`; ``max_iter // 5`` SGD epochs, ``kl_divergence_`` is NaN).
Stopping: ``max_iter`` steps, or earlier after early exaggeration when the
gradient norm falls below ``min_grad_norm``, when the KL (checked every 50 steps) has not
improved for ``n_iter_without_progress`` steps, or when a callback returns true;
``n_iter_`` is the number of steps taken. The recursive teacher (RKDO in the full-batch setting)
replaces ``P`` after early exaggeration by ``P(t) = (1 - alpha_t) P(t-1) + alpha_t Q(t-1)`` at
every iteration, ``alpha_t`` from :func:`rkdo.schedules.alpha_schedule` (decaying to 0 for
non-constant schedules); ``kl_divergence_`` is always measured against the static ``P(0)``.

``transform`` places new points: ``parametric=True`` learns an MLP ``y = f(x)`` (Adam) instead
of free points and applies it; otherwise each new point is optimised against the fixed
embedding (:mod:`rkdo.estimators._placement`, openTSNE's semantics).

Reproducibility: the same ``random_state``, data and thread count give the same embedding. A
different torch thread count (``n_jobs``) changes the order of floating-point reductions, and
t-SNE's iteration amplifies such differences: results then agree in quality, not coordinates.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.decomposition import PCA
from sklearn.manifold import spectral_embedding
from sklearn.utils.validation import check_is_fitted, check_random_state, validate_data
from torch import Tensor
from tqdm.auto import tqdm

from rkdo._validation import check_choice, check_int, check_positive, check_unit_interval
from rkdo.distributed import resolve_device
from rkdo.estimators._affinity import SparseJoint
from rkdo.estimators._gradients import DenseCost, SparseCost
from rkdo.estimators._memory import check_dense_fits
from rkdo.estimators._mlp import mlp
from rkdo.estimators._placement import median_start, place
from rkdo.estimators._sampling import sampled_embedding
from rkdo.estimators.affinities import Affinity, PerplexityBased, conditional, joint
from rkdo.estimators.affinities._neighbours import check_metric
from rkdo.kernels import GaussianEmbedding, StudentT
from rkdo.schedules import ALPHA_SCHEDULES, alpha_schedule

__all__ = ["NeighbourEmbedding", "OBJECTIVES", "SOLVERS", "INITS"]

OBJECTIVES = ("tsne", "sne", "infonce", "neg")
SOLVERS = ("auto", "exact", "fft", "sampled")
INITS = ("pca", "random", "spectral")
_EXACT_LIMIT = 1000
_CHECK_EVERY = 50
_MIN_SAMPLES = 4
# SNE's Gaussian has no heavy tail: attraction is a linear spring and the t-SNE step overshoots
_SNE_DAMPING = {"sne": 10.0}



def _optional(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    return lambda name, value: None if value is None else check(name, value)


def _choice(options: tuple[str, ...]) -> Callable[[str, Any], Any]:
    return lambda name, value: check_choice(name, value, options)


def _int(low: int) -> Callable[[str, Any], int]:
    return lambda name, value: check_int(name, value, low=low)


def _learning_rate(name: str, value: Any) -> Any:
    return value if isinstance(value, str) and value == "auto" else check_positive(name, value)


def _init(name: str, value: Any) -> Any:
    if isinstance(value, str):
        return check_choice(name, value, INITS)
    array = np.asarray(value)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{name} must be one of {', '.join(INITS)} or an (n_samples, "
                         f"n_components) array, got {type(value).__name__} of shape "
                         f"{array.shape}")
    return value


def _metric(name: str, value: Any) -> Any:
    return check_metric(value)


def _affinity(name: str, value: Any) -> Any:
    if isinstance(value, str) and value == "perplexity":
        return value
    if not isinstance(value, Affinity):
        raise ValueError(f"{name} must be 'perplexity' or an affinity object with fit and "
                         f"to_new (rkdo.estimators.affinities), got {value!r}")
    return value


def _callbacks(name: str, value: Any) -> Any:
    callbacks = value if isinstance(value, list | tuple) else [value]
    if not all(callable(callback) for callback in callbacks):
        raise ValueError(f"{name} must be a callable or a list of callables "
                         "f(iteration, kl, embedding) -> bool")
    return value


def _mapping(name: str, value: Any) -> Any:
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a dict of keyword arguments, got {value!r}")
    return value


def _n_jobs(name: str, value: Any) -> int:
    jobs = check_int(name, value, low=-(os.cpu_count() or 1))
    if jobs == 0:
        raise ValueError(f"{name} must be a non-zero integer (-1: all cores), got 0")
    return jobs


def _sizes(name: str, value: Any) -> Any:
    for size in value:
        check_int(name, size, low=1)
    return value


# no set_output wrapping: ``transform`` returns arrays, as scikit-learn's TSNE
class NeighbourEmbedding(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """Neighbour embedding by I-Con's KL objective (module docstring has the equations).

    Parameters (the checks of each are in ``_CONSTRAINTS`` below; those that depend on ``n``
    are in ``_check_for``):
        n_components: embedding dimension (fft: 2 only).
        objective: ``"tsne"``, ``"sne"`` or ``"infonce"``.
        perplexity: effective number of input neighbours; above what ``n`` allows it is
            lowered to ``k / 3`` (``k`` the neighbours available, ``n - 1`` at most) with a
            warning, as openTSNE does.
        metric, metric_params: input distance (a scikit-learn / scipy name, a callable, or
            ``"precomputed"``: ``X`` is a dense ``(n, n)`` distance matrix or a sparse k-NN
            distance graph) and its keyword arguments.
        affinity: ``"perplexity"`` (the Gaussian above) or an affinity object from
            :mod:`rkdo.estimators.affinities` (cloned and fitted on ``X``); ``fit(X,
            affinities=...)`` also takes an already fitted one (openTSNE's ``affinities=``).
        dof: degrees of freedom ``nu`` of the Student-t kernel.
        method: the solver, ``"auto"``, ``"exact"`` or ``"fft"`` (module docstring).
        max_iter: most optimisation steps, early exaggeration included.
        early_exaggeration, early_exaggeration_iter: ``e`` and its number of steps.
        learning_rate: ``"auto"`` (``max(n / e / 4, 50)`` per phase, a tenth of it for SNE;
            Adam's 1e-3 when parametric) or > 0.
        max_step_norm: largest step of one point per iteration (``None``: unbounded).
        min_grad_norm, n_iter_without_progress: early stopping (module docstring).
        init: ``"pca"``, ``"random"``, ``"spectral"`` (of the joint ``P``) or an
            ``(n, n_components)`` array used as given. PCA needs features: with
            ``metric="precomputed"`` or affinities alone it falls back to spectral, with a
            warning.
        alpha, alpha_schedule: the recursive teacher's rate and its schedule.
        parametric, hidden_layer_sizes: learn an MLP ``x -> y`` with these hidden widths.
        callbacks: a callable or a list, each called every 50 steps as
            ``f(iteration, kl, embedding)``; a true return value stops the run.
        n_jobs: torch threads (and neighbour-search workers) during ``fit``; ``None`` leaves
            torch's setting, ``-1`` uses every core.
        random_state, device, verbose: seed, torch device, progress bar.

    Attributes: ``embedding_`` (the dtype of ``X``: float32 stays float32), ``kl_divergence_``,
    ``n_iter_``, ``history_`` (one dict every 50 steps: ``iteration``, ``kl`` against the
    current target, ``alpha``), ``learning_rate_``, ``method_``, ``affinity_`` (the fitted
    affinity), ``effective_perplexity_`` (where the affinity has one).
    """

    _CONSTRAINTS: dict[str, Callable[[str, Any], Any]] = {
        "n_components": _int(1),
        "objective": _choice(OBJECTIVES),
        "perplexity": check_positive,
        "metric": _metric,
        "metric_params": _optional(_mapping),
        "affinity": _affinity,
        "dof": check_positive,
        "method": _choice(SOLVERS),
        "max_iter": _int(1),
        "early_exaggeration": check_positive,
        "early_exaggeration_iter": _int(0),
        "learning_rate": _learning_rate,
        "max_step_norm": _optional(check_positive),
        "min_grad_norm": lambda name, value: check_positive(name, value, allow_zero=True),
        "n_iter_without_progress": _int(1),
        "init": _init,
        "alpha": check_unit_interval,
        "alpha_schedule": _choice(ALPHA_SCHEDULES),
        "parametric": lambda name, value: bool(value),
        "hidden_layer_sizes": _sizes,
        "callbacks": _optional(_callbacks),
        "n_jobs": _optional(_n_jobs),
        "random_state": lambda name, value: value,
        "device": lambda name, value: resolve_device(value),
        "verbose": lambda name, value: bool(value),
    }

    def __init__(self, n_components: int = 2, *, objective: str = "tsne",
                 perplexity: float = 30.0, metric: str | Callable = "euclidean",
                 metric_params: dict | None = None, affinity: str | Affinity = "perplexity",
                 dof: float = 1.0, method: str = "auto", max_iter: int = 750,
                 early_exaggeration: float = 12.0, early_exaggeration_iter: int = 250,
                 learning_rate: float | str = "auto", max_step_norm: float | None = 5.0,
                 min_grad_norm: float = 1e-7, n_iter_without_progress: int = 300,
                 init: str | np.ndarray = "pca", alpha: float = 0.0,
                 alpha_schedule: str = "constant", parametric: bool = False,
                 hidden_layer_sizes: tuple[int, ...] = (256, 256),
                 callbacks: Callable | list[Callable] | None = None, n_jobs: int | None = None,
                 random_state: int | None = None, device: str = "cpu",
                 verbose: bool = False) -> None:
        self.n_components = n_components
        self.objective = objective
        self.perplexity = perplexity
        self.metric = metric
        self.metric_params = metric_params
        self.affinity = affinity
        self.dof = dof
        self.method = method
        self.max_iter = max_iter
        self.early_exaggeration = early_exaggeration
        self.early_exaggeration_iter = early_exaggeration_iter
        self.learning_rate = learning_rate
        self.max_step_norm = max_step_norm
        self.min_grad_norm = min_grad_norm
        self.n_iter_without_progress = n_iter_without_progress
        self.init = init
        self.alpha = alpha
        self.alpha_schedule = alpha_schedule
        self.parametric = parametric
        self.hidden_layer_sizes = hidden_layer_sizes
        self.callbacks = callbacks
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = not self.parametric
        tags.input_tags.pairwise = self.metric == "precomputed"
        return tags

    # -- checks -----------------------------------------------------------------------------

    def _check_params(self) -> None:
        for name, check in self._CONSTRAINTS.items():
            check(name, getattr(self, name))

    def _check_for(self, n: int) -> str:
        """The checks that depend on ``n``; returns the solver (``exact`` or ``fft``)."""
        if n < _MIN_SAMPLES:
            raise ValueError(f"too few points: neighbour embedding needs at least "
                             f"{_MIN_SAMPLES}, got {n}")
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
        if method == "exact":
            way_out = {"tsne": "use method='fft' (t-SNE in 2-D) or fewer points",
                       "infonce": "use method='sampled' (InfoNCE in 2-D) or fewer points"}.get(
                self.objective, "use objective='tsne' with method='fft', or fewer points")
            check_dense_fits(n, resolve_device(self.device),
                             f"method='exact' (objective={self.objective!r})", way_out)
        if not isinstance(self.init, str):
            init = np.asarray(self.init)
            if init.shape != (n, self.n_components):
                raise ValueError(f"init must have shape (n_samples, n_components) = "
                                 f"({n}, {self.n_components}), got {init.shape}")
            if not np.all(np.isfinite(init)):
                raise ValueError("init contains NaN or infinite values")
        return method

    # -- pieces of fit ----------------------------------------------------------------------

    def _fit_affinity(self, x, solver: str) -> Affinity:
        if isinstance(self.affinity, str):
            affinity = PerplexityBased(
                self.perplexity, metric=self.metric, metric_params=self.metric_params,
                n_neighbors=None if solver == "exact" else "auto", n_jobs=self.n_jobs,
                random_state=self._seed)
        else:
            affinity = clone(self.affinity)
        return affinity.fit(x)

    @staticmethod
    def _edges(affinity: Affinity) -> SparseJoint:
        """The joint ``P`` as upper-triangle edges (each unordered pair once)."""
        upper = sp.triu(sp.csr_matrix(joint(affinity.P_, affinity.kind)), k=1).tocoo()
        return SparseJoint(upper.row.astype(np.int64), upper.col.astype(np.int64),
                           upper.data.astype(np.float64), affinity.n_samples_)

    def _objective(self, affinity: Affinity, solver: str, device: torch.device):
        matrix, kind = affinity.P_, affinity.kind
        if solver == "fft":
            return SparseCost(self._edges(affinity), self.dof, device), torch.float32

        def log_dense(values) -> Tensor:
            dense = values.toarray() if sp.issparse(values) else np.asarray(values)
            return torch.from_numpy(dense).to(device, torch.float64).log()

        if self.objective == "tsne":
            log_p = log_dense(joint(matrix, kind))
            return DenseCost(log_p, StudentT(self.dof), joint=True), torch.float64
        if self.objective == "sne":
            log_p = log_dense(conditional(matrix, kind))
            return DenseCost(log_p, GaussianEmbedding(1.0), joint=False), torch.float64
        log_p = log_dense(conditional(joint(matrix, kind), "joint"))
        return DenseCost(log_p, StudentT(self.dof), joint=False), torch.float64

    def _scaled(self, y: np.ndarray) -> np.ndarray:
        return y / max(float(np.std(y[:, 0])), 1e-12) * 1e-4

    def _spectral(self, affinity: Affinity, rng: np.random.RandomState) -> np.ndarray:
        graph = sp.csr_matrix(joint(affinity.P_, affinity.kind))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Graph is not fully connected")
            y = spectral_embedding(graph, n_components=self.n_components, random_state=rng,
                                   drop_first=True)
        return self._scaled(y)

    def _initial(self, x, affinity: Affinity, rng: np.random.RandomState) -> np.ndarray:
        n = affinity.n_samples_
        if not isinstance(self.init, str):
            return np.array(self.init, dtype=np.float64)
        if self.init == "spectral":
            return self._spectral(affinity, rng)
        if self.init == "pca":
            if x is None or self.metric == "precomputed":
                warnings.warn("init='pca' needs features; using init='spectral' (the input "
                              "holds distances or affinities only)", stacklevel=3)
                return self._spectral(affinity, rng)
            if min(x.shape) > self.n_components or (
                    not sp.issparse(x) and min(x.shape) >= self.n_components):
                solver = "arpack" if sp.issparse(x) else "randomized"
                pca = PCA(self.n_components, svd_solver=solver, random_state=rng)
                # whatever sklearn.set_config(transform_output=...) says, an array comes back
                y = np.asarray(pca.set_output(transform="default").fit_transform(x))
                return self._scaled(y)
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

    def _callbacks_stop(self, step: int, kl: float, y: Tensor) -> bool:
        if self.callbacks is None or (step + 1) % _CHECK_EVERY:
            return False
        callbacks = self.callbacks if isinstance(self.callbacks, list | tuple) else [
            self.callbacks]
        embedding = y.detach().cpu().numpy().astype(np.float64)
        return any([bool(callback(step + 1, kl, embedding)) for callback in callbacks])

    def _converged(self, step: int, kl: float, grad_norm: float) -> bool:
        """Early stopping after early exaggeration (module docstring)."""
        if step < self.early_exaggeration_iter:
            return False
        if grad_norm < self.min_grad_norm:
            self.stop_reason_ = f"gradient norm {grad_norm:.3g} < min_grad_norm"
            return True
        if (step + 1) % _CHECK_EVERY == 0:
            if kl < self._best[0]:
                self._best = (kl, step)
            elif step - self._best[1] > self.n_iter_without_progress:
                self.stop_reason_ = f"no progress in {self.n_iter_without_progress} steps"
                return True
        return False

    def _descend(self, objective, y: Tensor, n: int) -> tuple[Tensor, int]:
        """The gains-and-momentum descent on free points; returns ``(y, steps taken)``."""
        update, gains = torch.zeros_like(y), torch.ones_like(y)
        total = self.max_iter - self.early_exaggeration_iter
        step = 0
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
            if self.max_step_norm is not None:
                norms = update.norm(dim=1, keepdim=True)
                update = update * (self.max_step_norm / norms.clamp_min(self.max_step_norm))
            y = y + update
            self._record(step, kl, objective, self._alpha(step, total))
            if self._converged(step, kl, float(grad.norm())) or self._callbacks_stop(step, kl, y):
                break
        return y, step + 1

    def _train_network(self, objective, x: Tensor) -> tuple[Tensor, int]:
        """Adam on an MLP whose output is the embedding; the objective's gradient is pulled
        back through it."""
        torch.manual_seed(self._seed)
        self.network_ = mlp(x.shape[1], tuple(self.hidden_layer_sizes),
                             self.n_components).to(x.device, x.dtype)
        rate = 1e-3 if self.learning_rate == "auto" else float(self.learning_rate)
        self.learning_rate_ = rate
        optimiser = torch.optim.Adam(self.network_.parameters(), lr=rate)
        total = self.max_iter - self.early_exaggeration_iter
        step = 0
        for step in tqdm(range(self.max_iter), disable=not self.verbose, desc="embedding"):
            exaggeration, _ = self._phase(step)
            y = self.network_(x)
            kl, grad = objective.gradient(y.detach(), exaggeration)
            optimiser.zero_grad()
            y.backward(grad)
            optimiser.step()
            self._record(step, kl, objective, self._alpha(step, total))
            if self._callbacks_stop(step, kl, y):
                break
        with torch.no_grad():
            return self.network_(x), step + 1

    def _record(self, step: int, kl: float, objective, alpha: float) -> None:
        if step % _CHECK_EVERY == 0 or step == self.max_iter - 1:
            self.history_.append({"iteration": step, "kl": kl, "alpha": alpha})
        if not math.isfinite(kl):
            if step == 0:
                raise FloatingPointError(
                    "the objective is not finite at the initial embedding (iteration 0): the "
                    "input affinities or init hold values it cannot use; check for duplicate "
                    "or non-finite rows and for a finite init")
            raise FloatingPointError(
                f"the objective diverged at iteration {step} with learning_rate "
                f"{self.learning_rate_:g}; lower learning_rate or max_step_norm")
        objective.teacher_step(alpha)

    # -- public API -------------------------------------------------------------------------

    def fit(self, X=None, y=None, *, affinities: Affinity | None = None) -> NeighbourEmbedding:
        """Embed ``X`` (or the points of fitted ``affinities``); the result is
        ``embedding_``."""
        self.fit_transform(X, affinities=affinities)
        return self

    def _validated(self, X) -> Any:
        sparse = "csr" if not self.parametric else False
        x = validate_data(self, X, dtype=[np.float64, np.float32], accept_sparse=sparse,
                          ensure_min_samples=_MIN_SAMPLES)
        if self.metric == "precomputed" and x.shape[0] != x.shape[1]:
            raise ValueError("metric='precomputed' needs a square (n, n) distance matrix, got "
                             f"shape {x.shape}")
        return x

    def fit_transform(self, X=None, y=None, *,
                      affinities: Affinity | None = None) -> np.ndarray:
        """Embed ``X`` (or the points of fitted ``affinities``) and return ``embedding_``,
        ``(n, n_components)``."""
        self._check_params()
        if X is None and affinities is None:
            raise ValueError("fit needs X, or fitted affinities (affinities=...)")
        if affinities is not None and self.parametric:
            raise ValueError("parametric=True learns a map from X; it cannot use affinities "
                             "alone")
        x = None if X is None else self._validated(X)
        if affinities is not None:
            _affinity("affinities", affinities)
            if not hasattr(affinities, "P_"):
                if x is None:
                    raise ValueError("unfitted affinities need X to be fitted on")
                affinities = affinities.fit(x)
            n = affinities.n_samples_
            if x is not None and x.shape[0] != n:
                raise ValueError(f"affinities describe {n} points but X has {x.shape[0]} rows")
        else:
            n = x.shape[0]
        solver = self._check_for(n)
        threads = torch.get_num_threads()
        if self.n_jobs is not None:
            torch.set_num_threads(self.n_jobs if self.n_jobs > 0 else max(
                1, (os.cpu_count() or 1) + 1 + self.n_jobs))
        try:
            return self._fit(x, affinities, solver)
        finally:
            torch.set_num_threads(threads)

    def _fit(self, x, affinities: Affinity | None, solver: str) -> np.ndarray:
        rng = check_random_state(self.random_state)
        self._seed = int(rng.randint(2**31 - 1))
        device = resolve_device(self.device)
        affinity = affinities if affinities is not None else self._fit_affinity(x, solver)
        self.affinity_ = affinity
        if hasattr(affinity, "effective_perplexity_"):
            self.effective_perplexity_ = affinity.effective_perplexity_
        out_dtype = np.float32 if x is not None and x.dtype == np.float32 else np.float64
        if solver == "sampled":
            epochs = max(1, self.max_iter // 5)
            embedding = sampled_embedding(self._edges(affinity), self._initial(x, affinity, rng),
                                          loss=self.objective, seed=self._seed, epochs=epochs)
            self.method_, self.n_iter_, self.history_ = "sampled", epochs, []
            self.kl_divergence_ = float("nan")  # InfoNCE over all n points is not evaluated
            self.embedding_ = embedding.astype(out_dtype)
            return self.embedding_
        objective, dtype = self._objective(affinity, solver, device)
        self.history_: list[dict[str, float]] = []
        self._best = (math.inf, 0)
        self.stop_reason_ = "max_iter"
        if self.parametric:
            inputs = torch.from_numpy(np.array(x, dtype=np.float64)).to(device, dtype)
            embedding, steps = self._train_network(objective, inputs)
        else:
            start = torch.from_numpy(self._initial(x, affinity, rng)).to(device, dtype)
            embedding, steps = self._descend(objective, start, affinity.n_samples_)
        self.method_ = solver
        self.n_iter_ = steps
        self.kl_divergence_ = objective.static_kl(embedding)
        self.embedding_ = embedding.detach().cpu().numpy().astype(out_dtype)
        return self.embedding_

    def transform(self, X, *, perplexity: float = 5.0, max_iter: int = 250,
                  learning_rate: float = 0.1, exaggeration: float = 1.5) -> np.ndarray:
        """Place new points into the fitted embedding.

        Parametric: the learned network's output (the keyword arguments are unused).
        Otherwise each new point is optimised against the fixed ``embedding_``
        (:mod:`rkdo.estimators._placement`), with openTSNE's ``transform`` defaults: the
        affinities of the fitted affinity's ``to_new`` at ``perplexity`` 5, ``max_iter`` 250
        steps of ``learning_rate`` 0.1, attraction exaggerated by 1.5. Not the same numbers
        as ``fit_transform`` on the training points (which are embedded jointly).
        """
        check_is_fitted(self, "embedding_")
        x = validate_data(self, X, dtype=[np.float64, np.float32], reset=False,
                          accept_sparse=False if self.parametric else "csr")
        out_dtype = np.float32 if x.dtype == np.float32 else np.float64
        if self.parametric:
            parameter = next(self.network_.parameters())
            with torch.no_grad():
                y = self.network_(torch.tensor(x, device=parameter.device,
                                               dtype=parameter.dtype))
            return y.cpu().numpy().astype(out_dtype)
        p = self.affinity_.to_new(x, perplexity) if isinstance(
            self.affinity_, PerplexityBased) else self.affinity_.to_new(x)
        reference = np.asarray(self.embedding_, dtype=np.float64)
        start = median_start(reference, p)
        placed = place(reference, p, start, dof=float(self.dof), n_iter=check_int(
            "max_iter", max_iter, low=0), learning_rate=check_positive(
            "learning_rate", learning_rate), exaggeration=check_positive(
            "exaggeration", exaggeration), max_step_norm=self.max_step_norm)
        return placed.astype(out_dtype)
