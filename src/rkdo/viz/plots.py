"""Static figures of training runs: loss and evaluation curves, and 2-D maps of features.

``plot_curves`` reads each run directory's ``metrics.jsonl`` (training lines: ``step``, ``loss``;
evaluation lines: ``"kind": "eval"``, ``step`` and metric values) and draws the training loss and
every evaluation metric against the step, one panel per quantity, one line per run. Timings
(``eval_seconds``, ...) are not metrics and are not drawn. Runs evaluated once have no curve to
draw: their metrics become one panel of points per scale (accuracies, losses), one row per
metric, instead of a panel of a single dot per metric.

``embed_2d`` maps features to the plane, by PCA (scikit-learn) or by exact t-SNE, I-Con's
neighbour-embedding row (:class:`rkdo.estimators.NeighbourEmbedding`: joint perplexity-calibrated
Gaussian P, Student-t Q over all pairs, early exaggeration, momentum and gains),

    KL(P || Q) = sum_{i != j} p_ij log(p_ij / q_ij),   q_ij ∝ (1 + |y_i - y_j|^2)^-1,

from the PCA map. ``plot_embedding`` scatters the map coloured by label, with class names where
they are known, and marker area and opacity that shrink with the number of points ``n``
(:func:`marker_style`) so 70,000 points do not smear into blots; ``plot_run_embedding`` does all
three for a trained run's test images.

Figures use matplotlib's object API (``Figure``, never ``pyplot``), imported when one is drawn,
display names for metrics, labelled axes and a legend clear of the data; they are written at
:data:`DPI` dots per inch (a page column is ~3.5 inches wide), atomically.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rkdo._io import atomic_writer, read_json, read_jsonl
from rkdo._validation import check_choice, check_int
from rkdo.estimators import NeighbourEmbedding
from rkdo.evaluation import FULL_METRICS, PAPER_METRICS, extract_features
from rkdo.training import EVAL_FILE, METRICS_FILE, load_run

__all__ = [
    "DPI",
    "DISPLAY_NAMES",
    "EMBEDDING_METHODS",
    "marker_style",
    "read_metrics",
    "plot_curves",
    "embed_2d",
    "plot_embedding",
    "plot_run_embedding",
]

# metrics shown first, in this order; any other numeric evaluation key follows, sorted
_ORDER = FULL_METRICS + PAPER_METRICS
_NOT_METRICS = {"kind", "epoch", "step", "images_per_s", "samples_per_s", "lr"}
EMBEDDING_METHODS = ("pca", "tsne")
DPI = 200.0
DISPLAY_NAMES = {
    "linear_probe": "linear probe", "knn_acc_20": "20-NN", "knn_acc_200": "200-NN",
    "nmi": "k-means NMI", "ari": "k-means ARI", "cluster_acc": "k-means accuracy",
    "neighbourhood_acc_5": "5-NN neighbourhood acc.",
    "heldout_icon_loss": "held-out I-Con loss", "paper_linear_probe": "linear eval (paper)",
    "paper_nmi": "NMI (paper)", "paper_ari": "ARI (paper)",
    "paper_neighbourhood_acc_5": "5-NN neighbourhood (paper)",
}
"""How a metric is named on a figure (any other metric: its key with spaces)."""
_STYLE = {"font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "legend.fontsize": 8,
          "xtick.labelsize": 8, "ytick.labelsize": 8}


def _display(metric: str) -> str:
    return DISPLAY_NAMES.get(metric, metric.replace("_", " "))


def _is_loss(metric: str) -> bool:
    return "loss" in metric


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def read_metrics(run_dir: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(training lines, evaluation lines)`` of a run's ``metrics.jsonl``.

    Training lines are those without ``kind`` (or ``kind == "train"``) that carry a ``loss``;
    evaluation lines have ``kind == "eval"``. If the log has no evaluation line, the final
    ``eval.json`` (when present) is used as one.
    """
    run_dir = Path(run_dir)
    log = run_dir / METRICS_FILE
    if not log.exists():
        raise ValueError(f"{run_dir} is not a run directory: no {METRICS_FILE} in it")
    train, evaluation = [], []
    for record in read_jsonl(log):
        kind = record.get("kind", "train")
        if kind == "train" and "loss" in record and "step" in record:
            train.append(record)
        elif kind == "eval" and "step" in record:
            evaluation.append(record)
    final = run_dir / EVAL_FILE
    if not evaluation and final.exists():
        record = read_json(final)
        if "step" not in record and train:
            record["step"] = train[-1]["step"]
        if "step" in record:
            evaluation.append(record)
    return train, evaluation


def _metric_names(evaluations: list[list[dict[str, Any]]]) -> list[str]:
    seen = {key for rows in evaluations for row in rows for key, value in row.items()
            if key not in _NOT_METRICS and not key.endswith("_seconds") and _is_number(value)}
    return [m for m in _ORDER if m in seen] + sorted(seen - set(_ORDER))


def _run_names(run_dirs: list[Path]) -> list[str]:
    names = [d.resolve().name for d in run_dirs]
    if len(set(names)) == len(names):
        return names
    return [str(d) for d in run_dirs]


def plot_curves(
    run_dirs: list[str | Path],
    out: str | Path,
    *,
    metrics: list[str] | None = None,
    names: list[str] | None = None,
    log_loss: bool = False,
    dpi: float = DPI,
) -> Path:
    """Training loss and evaluation metrics of one or more runs on one PNG.

    Args:
        run_dirs: run directories (each with ``metrics.jsonl``).
        out: the PNG to write.
        metrics: evaluation metrics to draw (default: every numeric one found).
        names: legend name of each run (default: the directory names).
        log_loss: logarithmic loss axis.
        dpi: resolution.
    """
    run_dirs = [Path(d) for d in run_dirs]
    if not run_dirs:
        raise ValueError("give at least one run directory")
    if names is not None and len(names) != len(run_dirs):
        raise ValueError(f"names must give one name per run ({len(run_dirs)}), got {len(names)}")
    names = list(names) if names is not None else _run_names(run_dirs)
    logs = [read_metrics(d) for d in run_dirs]
    available = _metric_names([evaluation for _, evaluation in logs])
    if metrics is None:
        metrics = available
    else:
        unknown = [m for m in metrics if m not in available]
        if unknown:
            raise ValueError(f"metrics {unknown} are not in these runs; available: {available}")
    if not any(train for train, _ in logs) and not metrics:
        raise ValueError("these runs have neither training losses nor evaluation metrics to plot")
    return _save_png(_curves_figure(logs, names, metrics, log_loss, dpi), out)


def _figure(width: float, height: float, dpi: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _curves_figure(logs: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]],
                   names: list[str], metrics: list[str], log_loss: bool, dpi: float) -> Any:
    """The loss panel and the metrics' panels (module docstring), one colour per run."""
    from matplotlib import rc_context

    with rc_context(_STYLE):
        once = all(len(evaluation) <= 1 for _, evaluation in logs)
        groups = ([[m for m in metrics if not _is_loss(m)], [m for m in metrics if _is_loss(m)]]
                  if once else [[m] for m in metrics])
        groups = [group for group in groups if group]
        panels = 1 + len(groups)
        columns = min(3, panels)
        rows = math.ceil(panels / columns)
        tall = max((len(g) for g in groups), default=1) if once else 1
        figure = _figure(2.4 * columns + 0.4, (2.3 + 0.12 * tall) * rows + 0.5, dpi)
        axes = figure.subplots(rows, columns, squeeze=False).ravel()
        colors = [f"C{i % 10}" for i in range(len(logs))]
        _loss_panel(axes[0], logs, names, colors, log_loss)
        for ax, group in zip(axes[1:], groups, strict=False):
            if once:
                _final_panel(ax, logs, names, colors, group)
            else:
                _metric_panel(ax, logs, names, colors, group[0])
        for ax in axes[panels:]:
            ax.set_axis_off()
        handles, labels = axes[0].get_legend_handles_labels()
        if not handles:
            for ax in axes[1:panels]:
                handles, labels = ax.get_legend_handles_labels()
                if handles:
                    break
        if handles:
            figure.legend(handles, labels, loc="outside lower center", frameon=False,
                          ncol=max(1, min(len(labels), int(figure.get_figwidth() / 1.4))))
    return figure


def _loss_panel(ax: Any, logs: list[Any], names: list[str], colors: list[str],
                log_loss: bool) -> None:
    from matplotlib.ticker import MaxNLocator

    for name, color, (train, _) in zip(names, colors, logs, strict=True):
        if train:
            ax.plot([r["step"] for r in train], [r["loss"] for r in train], color=color,
                    label=name, lw=1.2)
    ax.set_title("training loss (each run's own objective)")
    ax.set_xlabel("training step")
    ax.set_ylabel("loss")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if log_loss:
        ax.set_yscale("log")


def _metric_panel(ax: Any, logs: list[Any], names: list[str], colors: list[str],
                  metric: str) -> None:
    from matplotlib.ticker import MaxNLocator

    for name, color, (_, evaluation) in zip(names, colors, logs, strict=True):
        points = [(r["step"], r[metric]) for r in evaluation if _is_number(r.get(metric))]
        if points:
            steps, values = zip(*points, strict=True)
            ax.plot(steps, values, color=color, marker="o", ms=4, lw=1.2, label=name)
    ax.set_title(_display(metric))
    ax.set_xlabel("training step")
    ax.set_ylabel("loss" if _is_loss(metric) else "score (test)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def _final_panel(ax: Any, logs: list[Any], names: list[str], colors: list[str],
                 metrics: list[str]) -> None:
    """Runs evaluated once: one row per metric, one point per run (dodged vertically)."""
    count = len(logs)
    for k, (name, color, (_, evaluation)) in enumerate(zip(names, colors, logs, strict=True)):
        final = evaluation[-1] if evaluation else {}
        rows = [(i, final[m]) for i, m in enumerate(metrics) if _is_number(final.get(m))]
        if rows:
            index, values = zip(*rows, strict=True)
            offset = (k - (count - 1) / 2) * min(0.6 / max(count, 1), 0.2)
            ax.plot(values, [i + offset for i in index], "o", color=color, label=name, ms=5)
    ax.set_yticks(range(len(metrics)), [_display(m) for m in metrics])
    ax.set_ylim(len(metrics) - 0.5, -0.5)
    losses = _is_loss(metrics[0])
    ax.set_xlabel("loss (lower is better)" if losses else "score on the test split")
    ax.set_title("final " + ("losses" if losses else "scores") + " (one evaluation)")
    ax.grid(axis="x", alpha=0.3)


def _save_png(figure: Any, out: str | Path) -> Path:
    """Save ``figure`` atomically, in the format of ``out``'s suffix (PNG without one)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    image_format = out.suffix.lstrip(".").lower() or "png"
    return atomic_writer(out, lambda tmp: figure.savefig(tmp, format=image_format))


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
    no class hides under another."""
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
    with rc_context(_STYLE):
        figure = _figure(5.6, 4.2, dpi)
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
    return _save_png(figure, out)


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
