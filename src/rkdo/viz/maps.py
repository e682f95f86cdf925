"""2-D maps of learned features: a plane embedding, and a scatter of it coloured by class.

``embed_2d`` maps features to the plane, by PCA (scikit-learn) or by exact t-SNE, I-Con's
neighbour-embedding row (:class:`rkdo.estimators.NeighbourEmbedding`: joint perplexity-calibrated
Gaussian P, Student-t Q over all pairs, early exaggeration, momentum and gains),

    KL(P || Q) = sum_{i != j} p_ij log(p_ij / q_ij),   q_ij ∝ (1 + |y_i - y_j|^2)^-1,

from the PCA map. ``plot_embedding`` scatters the map coloured by label, with class names where
they are known, and marker area and opacity that shrink with the number of points ``n``
(:func:`marker_style`) so 70,000 points do not smear into blots; ``plot_run_embedding`` does all
three for a trained run's test images. Figures as :mod:`rkdo.viz.figures` makes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from rkdo._figure_style import DPI, TYPE_SIZES
from rkdo._validation import check_choice, check_int
from rkdo.estimators import NeighbourEmbedding
from rkdo.evaluation import extract_features
from rkdo.training import load_run
from rkdo.viz.figures import new_figure, save_figure

__all__ = ["EMBEDDING_METHODS", "marker_style", "embed_2d", "plot_embedding",
           "plot_run_embedding"]

EMBEDDING_METHODS = ("pca", "tsne")


def _tsne(features: np.ndarray, perplexity: float, steps: int, seed: int) -> np.ndarray:
    """Exact t-SNE by :class:`rkdo.estimators.NeighbourEmbedding` (module docstring)."""
    n = features.shape[0]
    if not 1.0 < perplexity < n - 1:
        raise ValueError(f"perplexity must lie in (1, {n - 1}) for {n} points, got {perplexity}")
    model = NeighbourEmbedding(perplexity=perplexity, max_iter=steps,
                               early_exaggeration_iter=min(250, steps // 3), random_state=seed)
    return model.fit_transform(features)


def embed_2d(
    features: Any,
    method: str = "pca",
    *,
    perplexity: float = 30.0,
    steps: int = 300,
    seed: int = 0,
) -> np.ndarray:
    """``(n, 2)`` map of ``(n, d)`` features by ``"pca"`` or ``"tsne"`` (see module docstring).

    ``steps`` and ``perplexity`` concern ``"tsne"`` only; it starts from the PCA map, so both
    are deterministic for a ``seed``.
    """
    from sklearn.decomposition import PCA

    check_choice("method", method, EMBEDDING_METHODS)
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 3:
        raise ValueError(f"features must be (n, d) with n >= 3, got shape {features.shape}")
    if features.shape[1] < 2:
        features = np.concatenate([features, np.zeros_like(features)], axis=1)
    pca = PCA(n_components=2, random_state=seed).fit_transform(features)
    if method == "pca":
        return pca
    return _tsne(features, perplexity, check_int("steps", steps, low=1), seed)


def marker_style(n: int) -> tuple[float, float]:
    """``(area in points^2, opacity)`` of a scatter of ``n`` points on a ~5-inch map.

    Area ``12000 / n`` (6 at 2,000 points, the floor 0.5 from 24,000) and opacity
    ``(3000 / n)^0.35`` within [0.15, 0.9]: overlapping points build up density instead of
    painting over each other."""
    n = max(int(n), 1)
    return float(np.clip(12000 / n, 0.5, 20.0)), float(np.clip((3000 / n) ** 0.35, 0.15, 0.9))


def plot_embedding(
    points,
    labels,
    out: str | Path,
    *,
    title: str = "",
    dpi: float = DPI,
    class_names: list[str] | None = None,
) -> Path:
    """Scatter ``(n, 2)`` points coloured by ``labels`` into a PNG, one legend entry per class.

    ``class_names[k]`` names integer label ``k`` (e.g. ``FASHION_MNIST_CLASSES``); marker
    size and opacity follow :func:`marker_style`; points are drawn in a seeded random order so
    no class hides under another. A PNG is written with a 256-colour palette
    (:func:`rkdo.viz.figures.save_figure`): ~4x smaller at 70,000 points."""
    from matplotlib import colormaps, rc_context
    from matplotlib.lines import Line2D

    points = np.asarray(points, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must be (n, 2), got shape {points.shape}")
    if labels.shape[0] != points.shape[0]:
        raise ValueError(f"labels must have one entry per point ({points.shape[0]}), "
                         f"got {labels.shape[0]}")
    classes, codes = np.unique(labels, return_inverse=True)
    names = [str(c) for c in classes]
    if class_names is not None and labels.dtype.kind in "iu":
        if classes.min() < 0 or classes.max() >= len(class_names):
            raise ValueError(f"class_names has {len(class_names)} names, but the labels run "
                             f"from {classes.min()} to {classes.max()}")
        names = [str(class_names[int(c)]) for c in classes]
    palette = colormaps["tab10" if len(classes) <= 10 else "tab20"]
    colours = palette(codes % palette.N)
    order = np.random.default_rng(0).permutation(len(points))
    size, alpha = marker_style(len(points))
    with rc_context(TYPE_SIZES):
        figure = new_figure(5.6, 4.2, dpi)
        ax = figure.add_subplot()
        ax.scatter(points[order, 0], points[order, 1], s=size, alpha=alpha, c=colours[order],
                   edgecolors="none", rasterized=True)
        if len(classes) <= 20:
            handles = [Line2D([], [], ls="", marker="o", ms=6, color=palette(k % palette.N),
                              label=name) for k, name in enumerate(names)]
            ax.legend(handles=handles, title="class", loc="center left",
                      bbox_to_anchor=(1.0, 0.5), frameon=False)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_aspect("equal", adjustable="datalim")
    # a palette of 256 colours: translucent points blend into ~35,000 shades at 70,000 points
    return save_figure(figure, out, palette=256)


def plot_run_embedding(
    run_dir: str | Path,
    out: str | Path,
    *,
    method: str = "pca",
    projection: bool = False,
    max_points: int = 2000,
    perplexity: float = 30.0,
    steps: int = 300,
    seed: int = 0,
    device: str = "cpu",
    dpi: float = DPI,
) -> Path:
    """Map a trained run's frozen test features to 2-D (:func:`embed_2d`) and plot them by label.

    At most ``max_points`` test images (a seeded random subset) are used; ``projection`` takes
    the projection head's output instead of the backbone's features.
    """
    check_int("max_points", max_points, low=3)
    run = load_run(run_dir, device=device)
    test = run.data.test
    images, labels = test.images, torch.as_tensor(test.labels)
    if len(labels) > max_points:
        chosen = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
        chosen = chosen[:max_points].sort().values
        images, labels = images[chosen], labels[chosen]
    features = extract_features(run.model, images, projection=projection,
                                image_size=run.config.resolved_image_size())
    points = embed_2d(features.cpu().numpy(), method, perplexity=perplexity, steps=steps,
                      seed=seed)
    kind = "projection" if projection else "backbone"
    title = (f"{Path(run_dir).name}: {run.config.method} on {run.config.dataset}, "
             f"{len(labels)} test images, {kind} features, "
             f"{'PCA' if method == 'pca' else 'exact t-SNE'}")
    return plot_embedding(points, labels.numpy(), out, title=title, dpi=dpi,
                          class_names=list(run.data.classes) or None)
