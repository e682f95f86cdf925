"""Static figures of training runs: loss and evaluation curves, and 2-D maps of features.

``plot_curves`` reads each run directory's ``metrics.jsonl`` (training lines: ``step``, ``loss``;
evaluation lines: ``"kind": "eval"``, ``step`` and metric values) and draws the training loss and
every evaluation metric against the step, one panel per quantity, one line per run.

``embed_2d`` maps features to the plane, by PCA (scikit-learn) or by exact t-SNE, I-Con's
neighbour-embedding row (:class:`rkdo.estimators.NeighbourEmbedding`: joint perplexity-calibrated
Gaussian P, Student-t Q over all pairs, early exaggeration, momentum and gains),

    KL(P || Q) = sum_{i != j} p_ij log(p_ij / q_ij),   q_ij ∝ (1 + |y_i - y_j|^2)^-1,

from the PCA map. ``plot_embedding`` scatters the map coloured by label;
``plot_run_embedding`` does all three for a trained run's test images.

Figures use matplotlib's object API (``Figure``, never ``pyplot``), imported when one is drawn;
PNG files are written atomically.
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
    "EMBEDDING_METHODS",
    "read_metrics",
    "plot_curves",
    "embed_2d",
    "plot_embedding",
    "plot_run_embedding",
]

# metrics shown first, in this order; any other numeric evaluation key follows, sorted
_ORDER = FULL_METRICS + PAPER_METRICS
_NOT_METRICS = {"kind", "epoch", "step"}
EMBEDDING_METHODS = ("pca", "tsne")


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
            if key not in _NOT_METRICS and _is_number(value)}
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
    dpi: float = 100.0,
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


def _curves_figure(logs: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]],
                   names: list[str], metrics: list[str], log_loss: bool, dpi: float) -> Any:
    """The loss panel and one panel per metric, three to a row, one line per run."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = ["loss", *metrics]
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(4.6 * columns, 3.4 * rows), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    colors = [f"C{i % 10}" for i in range(len(logs))]
    for name, color, (train, evaluation) in zip(names, colors, logs, strict=True):
        if train:
            axes[0].plot([r["step"] for r in train], [r["loss"] for r in train], color=color,
                         label=name, lw=1.2)
        for ax, metric in zip(axes[1:], metrics, strict=False):
            points = [(r["step"], r[metric]) for r in evaluation if _is_number(r.get(metric))]
            if points:
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, color=color, marker="o", ms=4, lw=1.2, label=name)
    axes[0].set_title("training loss (each run's own objective)", fontsize=10)
    axes[0].set_ylabel("loss")
    if log_loss:
        axes[0].set_yscale("log")
    for ax, metric in zip(axes[1:], metrics, strict=False):
        ax.set_title(metric, fontsize=10)
    for ax in axes[: len(panels)]:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    axes[0].legend(fontsize=8)
    return figure


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


def plot_embedding(
    points,
    labels,
    out: str | Path,
    *,
    title: str = "",
    dpi: float = 100.0,
) -> Path:
    """Scatter ``(n, 2)`` points coloured by ``labels`` (one legend entry per class) into a PNG."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    points = np.asarray(points, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must be (n, 2), got shape {points.shape}")
    if labels.shape[0] != points.shape[0]:
        raise ValueError(f"labels must have one entry per point ({points.shape[0]}), "
                         f"got {labels.shape[0]}")
    classes = np.unique(labels)
    palette = colormaps["tab10" if len(classes) <= 10 else "tab20"]
    figure = Figure(figsize=(6.4, 5.6), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    for index, label in enumerate(classes):
        chosen = labels == label
        ax.scatter(points[chosen, 0], points[chosen, 1], s=8, alpha=0.8,
                   color=palette(index % palette.N), label=str(label), edgecolors="none")
    if len(classes) <= 20:
        ax.legend(title="label", fontsize=7, markerscale=2, loc="center left",
                  bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
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
    dpi: float = 100.0,
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
    return plot_embedding(points, labels.numpy(), out, title=title, dpi=dpi)
