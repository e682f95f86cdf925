"""Static figures of training runs: loss and evaluation curves, and 2-D maps of features.

``plot_curves`` reads each run directory's ``metrics.jsonl`` (training lines: ``step``, ``loss``;
evaluation lines: ``"kind": "eval"``, ``step`` and metric values) and draws the training loss and
every evaluation metric against the step, one panel per quantity, one line per run. Timings
(``eval_seconds``, ...) are not metrics and are not drawn. Runs evaluated once have no curve to
draw: their metrics become one panel of points per scale (accuracies, losses), one row per
metric, instead of a panel of a single dot per metric.

The 2-D maps of features (``embed_2d``, ``plot_embedding``, ``plot_run_embedding``,
``marker_style``) are :mod:`rkdo.viz.maps`'s and are exported here too.

Figures (:mod:`rkdo.viz.figures`) use display names for metrics, labelled axes and a legend
clear of the data; they are written at :data:`rkdo._figure_style.DPI` dots per inch, atomically.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rkdo._figure_style import DPI, TYPE_SIZES
from rkdo._io import read_json, read_jsonl
from rkdo.evaluation import FULL_METRICS, PAPER_METRICS
from rkdo.training import EVAL_FILE, METRICS_FILE
from rkdo.viz.figures import new_figure, save_figure
from rkdo.viz.maps import (
    EMBEDDING_METHODS,
    embed_2d,
    marker_style,
    plot_embedding,
    plot_run_embedding,
)

__all__ = [
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
DISPLAY_NAMES = {
    "linear_probe": "linear probe", "knn_acc_20": "20-NN", "knn_acc_200": "200-NN",
    "nmi": "k-means NMI", "ari": "k-means ARI", "cluster_acc": "k-means accuracy",
    "neighbourhood_acc_5": "5-NN neighbourhood acc.",
    "heldout_icon_loss": "held-out I-Con loss", "paper_linear_probe": "linear eval (paper)",
    "paper_nmi": "NMI (paper)", "paper_ari": "ARI (paper)",
    "paper_neighbourhood_acc_5": "5-NN neighbourhood (paper)",
}
"""How a metric is named on a figure (any other metric: its key with spaces)."""


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
    return save_figure(_curves_figure(logs, names, metrics, log_loss, dpi), out)


def _curves_figure(logs: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]],
                   names: list[str], metrics: list[str], log_loss: bool, dpi: float) -> Any:
    """The loss panel and the metrics' panels (module docstring), one colour per run."""
    from matplotlib import rc_context

    with rc_context(TYPE_SIZES):
        once = all(len(evaluation) <= 1 for _, evaluation in logs)
        groups = ([[m for m in metrics if not _is_loss(m)], [m for m in metrics if _is_loss(m)]]
                  if once else [[m] for m in metrics])
        groups = [group for group in groups if group]
        panels = 1 + len(groups)
        columns = min(3, panels)
        rows = math.ceil(panels / columns)
        tall = max((len(g) for g in groups), default=1) if once else 1
        figure = new_figure(2.4 * columns + 0.4, (2.3 + 0.12 * tall) * rows + 0.5, dpi)
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


