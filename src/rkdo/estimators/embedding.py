"""``NeighbourEmbedding``: t-SNE, SNE and the InfoNCE neighbour embedding as one estimator.

I-Con's objective with an input affinity ``P`` and a learned kernel on the embedding ``y``:

    t-SNE:    KL(P || Q),  P_ij = (p(j|i) + p(i|j)) / 2n,  Q_ij = w_ij / sum_{k != l} w_kl,
    SNE:      1/n sum_i KL(p(.|i) || q(.|i)),  q(j|i) ∝ exp(-|y_i - y_j|^2),
    InfoNCE:  1/n sum_i KL(P(.|i) || q(.|i)),  q(j|i) ∝ w_ij  (every other point a negative),

with ``p(j|i)`` an input affinity (:mod:`rkdo.estimators.affinities`; by default the
perplexity-calibrated Gaussian under ``metric``) and the Student-t kernel
``w_ij = (1 + |y_i - y_j|^2 / nu)^(-(nu + 1) / 2)``.

The optimiser is the field's (:mod:`rkdo.estimators._optimiser`): PCA initialisation scaled to
standard deviation 1e-4 (:mod:`rkdo.estimators._embedding_init`), early exaggeration (12 for 250
iterations, momentum 0.5, then 0.8), learning rate ``max(n / e / 4, 50)`` with ``e`` the
exaggeration of the current phase (openTSNE's choice: 12x larger after early exaggeration than
scikit-learn's fixed ``n / 48``, which leaves 500 iterations short of convergence) and
per-coordinate gains. Each point's step is clipped to norm ``max_step_norm`` (openTSNE's, 5 by
default): the embedding's span, and with it the FFT grid, grows by at most ``2 max_step_norm``
per step; the clip acts only when a step would overshoot (a large learning rate on few points).
Stopping: ``max_iter`` steps, or earlier after early exaggeration when the gradient norm falls
below ``min_grad_norm``, when the KL (checked every 50 steps) has not improved for
``n_iter_without_progress`` steps, or when a callback returns true; ``n_iter_`` is the number of
steps taken. The recursive teacher (RKDO in the full-batch setting) replaces ``P`` after early
exaggeration by ``P(t) = (1 - alpha_t) P(t-1) + alpha_t Q(t-1)`` at every iteration, ``alpha_t``
from :func:`rkdo.schedules.alpha_schedule` (decaying to 0 for non-constant schedules);
``kl_divergence_`` is always measured against the static ``P(0)``.

Solvers (:mod:`rkdo.estimators._solver`): ``method="exact"`` evaluates all pairs (O(n^2) time
and about ``128 n^2`` bytes, checked against free memory first); ``"fft"`` (t-SNE in 2-D only)
uses a k-NN ``P`` with ``3 x perplexity`` neighbours and interpolated repulsion (O(n) per step);
``"sampled"`` (InfoNCE and ``objective="neg"``, UMAP-like) draws positive pairs from the k-NN
``P`` and ``m = 5`` uniform negatives per pair, O(n) per epoch, for millions of points
(:mod:`rkdo.estimators._sampling`; ``max_iter // 5`` SGD epochs at ``learning_rate`` (``"auto"``:
1.0, as UMAP's), decayed linearly to 0; no early stopping or callbacks; ``kl_divergence_`` is NaN);
``"auto"`` picks fft for t-SNE and sampled for InfoNCE above 1,000 points in 2-D, else exact.

``transform`` places new points: ``parametric=True`` learns an MLP ``y = f(x)`` (Adam) instead
of free points and applies it; otherwise each new point is optimised against the fixed
embedding (:mod:`rkdo.estimators._placement`, openTSNE's semantics).

Reproducibility: the same ``random_state``, data and thread count give the same embedding. A
different torch thread count (``n_jobs``) changes the order of floating-point reductions, and
t-SNE's iteration amplifies such differences: results then agree in quality, not coordinates.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils.validation import check_is_fitted, check_random_state, validate_data

from rkdo._validation import check_int, check_positive, check_unit_interval
from rkdo.distributed import resolve_device
from rkdo.estimators import _embedding_params as checks
from rkdo.estimators._costs import build_cost, edges
from rkdo.estimators._embedding_defaults import DEFAULTS as _D
from rkdo.estimators._embedding_defaults import INITS, MIN_SAMPLES, OBJECTIVES, SOLVERS
from rkdo.estimators._embedding_init import check_init, initial_embedding
from rkdo.estimators._mlp import mlp
from rkdo.estimators._optimiser import Optimiser
from rkdo.estimators._placement import median_start, place
from rkdo.estimators._sampling import sampled_embedding
from rkdo.estimators._solver import choose_solver
from rkdo.estimators.affinities import Affinity, PerplexityBased
from rkdo.estimators.affinities._neighbours import check_metric
from rkdo.schedules import ALPHA_SCHEDULES

__all__ = ["NeighbourEmbedding", "OBJECTIVES", "SOLVERS", "INITS"]

#: the sampled solver's SGD rate for ``learning_rate="auto"`` (UMAP's initial alpha)
_SAMPLED_RATE = 1.0
# SNE's Gaussian has no heavy tail: attraction is a linear spring and the t-SNE step overshoots
_SNE_DAMPING = {"sne": 10.0}


# no set_output wrapping: ``transform`` returns arrays, as scikit-learn's TSNE
class NeighbourEmbedding(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """Neighbour embedding by I-Con's KL objective (module docstring has the equations).

    Parameters (defaults in :mod:`rkdo.estimators._embedding_defaults`; the checks of each are
    in ``_CONSTRAINTS`` below, from :mod:`rkdo.estimators._embedding_params`; those that depend
    on ``n`` are in ``_check_for``):
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

    _CONSTRAINTS: dict[str, checks.Check] = {
        "n_components": checks.integer(1),
        "objective": checks.choice(OBJECTIVES),
        "perplexity": check_positive,
        "metric": lambda name, value: check_metric(value),
        "metric_params": checks.optional(checks.mapping),
        "affinity": checks.affinity,
        "dof": check_positive,
        "method": checks.choice(SOLVERS),
        "max_iter": checks.integer(1),
        "early_exaggeration": check_positive,
        "early_exaggeration_iter": checks.integer(0),
        "learning_rate": checks.learning_rate,
        "max_step_norm": checks.optional(check_positive),
        "min_grad_norm": lambda name, value: check_positive(name, value, allow_zero=True),
        "n_iter_without_progress": checks.integer(1),
        "init": checks.init_or_array(INITS),
        "alpha": check_unit_interval,
        "alpha_schedule": checks.choice(ALPHA_SCHEDULES),
        "parametric": lambda name, value: bool(value),
        "hidden_layer_sizes": checks.sizes,
        "callbacks": checks.optional(checks.callbacks),
        "n_jobs": checks.optional(checks.n_jobs),
        "random_state": lambda name, value: value,
        "device": lambda name, value: resolve_device(value),
        "verbose": lambda name, value: bool(value),
    }

    def __init__(self, n_components: int = _D["n_components"], *,
                 objective: str = _D["objective"], perplexity: float = _D["perplexity"],
                 metric: str | Callable = _D["metric"],
                 metric_params: dict | None = _D["metric_params"],
                 affinity: str | Affinity = _D["affinity"], dof: float = _D["dof"],
                 method: str = _D["method"], max_iter: int = _D["max_iter"],
                 early_exaggeration: float = _D["early_exaggeration"],
                 early_exaggeration_iter: int = _D["early_exaggeration_iter"],
                 learning_rate: float | str = _D["learning_rate"],
                 max_step_norm: float | None = _D["max_step_norm"],
                 min_grad_norm: float = _D["min_grad_norm"],
                 n_iter_without_progress: int = _D["n_iter_without_progress"],
                 init: str | np.ndarray = _D["init"], alpha: float = _D["alpha"],
                 alpha_schedule: str = _D["alpha_schedule"], parametric: bool = _D["parametric"],
                 hidden_layer_sizes: tuple[int, ...] = _D["hidden_layer_sizes"],
                 callbacks: Callable | list[Callable] | None = _D["callbacks"],
                 n_jobs: int | None = _D["n_jobs"], random_state: int | None = _D["random_state"],
                 device: str = _D["device"], verbose: bool = _D["verbose"]) -> None:
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
        """The checks that depend on ``n``; returns the solver (:mod:`rkdo.estimators._solver`)."""
        if n < MIN_SAMPLES:
            raise ValueError(f"too few points: neighbour embedding needs at least "
                             f"{MIN_SAMPLES}, got {n}")
        method = choose_solver(self.method, self.objective, n, n_components=self.n_components,
                               parametric=self.parametric, device=resolve_device(self.device))
        check_init(self.init, n, self.n_components)
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

    # -- public API -------------------------------------------------------------------------

    def fit(self, X=None, y=None, *, affinities: Affinity | None = None) -> NeighbourEmbedding:
        """Embed ``X`` (or the points of fitted ``affinities``); the result is
        ``embedding_``."""
        self.fit_transform(X, affinities=affinities)
        return self

    def _validated(self, X) -> Any:
        sparse = "csr" if not self.parametric else False
        x = validate_data(self, X, dtype=[np.float64, np.float32], accept_sparse=sparse,
                          ensure_min_samples=MIN_SAMPLES)
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
            checks.affinity("affinities", affinities)
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
            return self._fit_sampled(x, affinity, rng, out_dtype)
        cost, dtype = build_cost(self.objective, affinity, solver, self.dof, device)
        optimiser = self._optimiser()
        self.history_ = optimiser.history
        if self.parametric:
            inputs = torch.from_numpy(np.array(x, dtype=np.float64)).to(device, dtype)
            torch.manual_seed(self._seed)
            self.network_ = mlp(inputs.shape[1], tuple(self.hidden_layer_sizes),
                                self.n_components).to(inputs.device, inputs.dtype)
            embedding, steps = optimiser.train_network(cost, self.network_, inputs)
        else:
            start = initial_embedding(self.init, x, affinity, self.n_components, self.metric, rng)
            embedding, steps = optimiser.descend(cost, torch.from_numpy(start).to(device, dtype),
                                                 affinity.n_samples_)
        self.learning_rate_, self.stop_reason_ = optimiser.learning_rate_, optimiser.stop_reason
        self.method_ = solver
        self.n_iter_ = steps
        self.kl_divergence_ = cost.static_kl(embedding)
        self.embedding_ = embedding.detach().cpu().numpy().astype(out_dtype)
        return self.embedding_

    def _fit_sampled(self, x, affinity: Affinity, rng: np.random.RandomState,
                     out_dtype: type) -> np.ndarray:
        epochs = max(1, self.max_iter // 5)
        start = initial_embedding(self.init, x, affinity, self.n_components, self.metric, rng)
        rate = _SAMPLED_RATE if self.learning_rate == "auto" else float(self.learning_rate)
        embedding = sampled_embedding(edges(affinity), start, loss=self.objective,
                                      seed=self._seed, epochs=epochs, learning_rate=rate)
        self.method_, self.n_iter_, self.history_ = "sampled", epochs, []
        self.learning_rate_, self.stop_reason_ = rate, "max_iter"
        self.kl_divergence_ = float("nan")  # InfoNCE over all n points is not evaluated
        self.embedding_ = embedding.astype(out_dtype)
        return self.embedding_

    def _optimiser(self) -> Optimiser:
        return Optimiser(
            max_iter=self.max_iter, early_exaggeration=self.early_exaggeration,
            early_exaggeration_iter=self.early_exaggeration_iter,
            learning_rate=self.learning_rate, max_step_norm=self.max_step_norm,
            min_grad_norm=self.min_grad_norm,
            n_iter_without_progress=self.n_iter_without_progress, alpha=self.alpha,
            alpha_schedule=self.alpha_schedule, damping=_SNE_DAMPING.get(self.objective, 1.0),
            callbacks=self.callbacks, verbose=self.verbose)

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
