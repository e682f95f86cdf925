"""The report's PNG figures, drawn with matplotlib's object API (no pyplot, no global backend).

    loss_vs_duration                   each method's training loss, and the held-out loss
    early_treatment_vs_late_baseline   treatment at ~2 epochs vs baseline at ~5 (bars)
    early_learning                     accuracy after the first durations (bars)
    loss_improvement                   (B - T) / |B| in percent, beside the paper's range
    accuracy_vs_duration               accuracy curves, mean ± std over seeds, 0 = untrained

Every figure is a :class:`matplotlib.figure.Figure` rendered by ``FigureCanvasAgg``, so drawing
a report never switches the caller's matplotlib backend. matplotlib is imported only here, and
only when figures are made.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from rkdo.bench import paper
from rkdo.bench.report.view import View
from rkdo.bench.store import Results

__all__ = ["make_figures", "FIGURE_NAMES"]

FIGURE_NAMES = ("loss_vs_duration", "early_treatment_vs_late_baseline", "early_learning",
            "loss_improvement", "accuracy_vs_duration")
"""The figures' names, in the order they are drawn."""


def _figure(rows: int, cols: int, size: tuple[float, float]) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size)
    FigureCanvasAgg(figure)
    return figure, figure.subplots(rows, cols, squeeze=False)


def _curve(ax: Any, view: View, colours: dict[str, Any], dataset: str, method: str,
           metric: str, with_floor: bool) -> None:
    xs, ys, es = [], [], []
    floor = view.floor(dataset, metric)
    if with_floor and floor.n:
        xs.append(0)
        ys.append(floor.mean)
        es.append(0.0 if floor.n < 2 else floor.std)
    for duration in view.durations:
        summary = view.summary(dataset, method, duration, metric)
        if summary.n:
            xs.append(duration)
            ys.append(summary.mean)
            es.append(0.0 if summary.n < 2 else summary.std)
    if xs:
        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=method, color=colours[method])


def _loss_metrics(view: View) -> list[str]:
    return [m for m in ("train_loss", "heldout_icon_loss") if view.has(m)]


def _accuracy_metrics(view: View) -> list[str]:
    return [m for m in dict.fromkeys((view.linear_metric(), "linear_probe", "knn_acc_20"))
            if view.has(m)]


def _metric_curves(view: View, colours: dict[str, Any], metrics: list[str],
                   title: Any, xlabel: str) -> Any:
    """One panel per (metric, dataset): each method's mean curve against duration."""
    n = len(view.datasets)
    if not metrics:
        return None
    figure, axes = _figure(len(metrics), n, (3.6 * n, 2.8 * len(metrics)))
    for row, metric in enumerate(metrics):
        for col, dataset in enumerate(view.datasets):
            ax = axes[row][col]
            for method in view.methods:
                _curve(ax, view, colours, dataset, method, metric,
                       with_floor=metric != "train_loss")
            pixels = view.pixels(dataset, metric)
            if metric != "train_loss" and pixels.n:
                ax.axhline(pixels.mean, color="0.5", linestyle=":", label="raw pixels")
            ax.set_title(title(dataset, metric), fontsize=9)
            ax.set_xlabel(xlabel)
            ax.legend(fontsize=7)
    return figure


def _loss_vs_duration(view: View, colours: dict[str, Any]) -> Any:
    return _metric_curves(
        view, colours, _loss_metrics(view),
        lambda dataset, metric:
            f"{dataset}: {'training' if metric == 'train_loss' else 'held-out'} loss",
        "epochs")


def _early_vs_late(view: View, colours: dict[str, Any]) -> Any:
    early, late = view.near(2), view.near(5)
    metrics, datasets = _accuracy_metrics(view), view.datasets
    if not (early < late and metrics):
        return None
    figure, axes = _figure(1, len(metrics), (3.6 * len(metrics), 3))
    width = 0.35
    for col, metric in enumerate(metrics):
        ax = axes[0][col]
        for k, (method, duration) in enumerate(((view.treatment, early),
                                                (view.baseline, late))):
            summaries = [view.summary(d, method, duration, metric) for d in datasets]
            ax.bar([i + (k - 0.5) * width for i in range(len(datasets))],
                   [s.mean for s in summaries], width,
                   yerr=[0 if s.n < 2 else s.std for s in summaries], capsize=3,
                   label=f"{method} {duration} ep", color=colours[method])
        for i, dataset in enumerate(datasets):
            floor, pixels = view.floor(dataset, metric), view.pixels(dataset, metric)
            if floor.n:
                ax.hlines(floor.mean, i - 0.45, i + 0.45, colors="k", linestyles="--",
                          label="untrained" if i == 0 else None)
            if pixels.n:
                ax.hlines(pixels.mean, i - 0.45, i + 0.45, colors="0.5", linestyles=":",
                          label="raw pixels" if i == 0 else None)
        ax.set_xticks(range(len(datasets)), datasets)
        ax.set_title(metric, fontsize=9)
        ax.legend(fontsize=7)
    return figure


def _early_learning(view: View, colours: dict[str, Any]) -> Any:
    metrics, n = _accuracy_metrics(view), len(view.datasets)
    if not metrics:
        return None
    metric = metrics[0]
    durations = [d for d in view.durations if d <= 2] or view.durations[:1]
    figure, axes = _figure(1, n, (3.6 * n, 3))
    width = 0.8 / max(len(view.methods), 1)
    for col, dataset in enumerate(view.datasets):
        ax = axes[0][col]
        for k, method in enumerate(view.methods):
            summaries = [view.summary(dataset, method, d, metric) for d in durations]
            ax.bar([i + (k - (len(view.methods) - 1) / 2) * width for i in range(len(durations))],
                   [s.mean for s in summaries], width,
                   yerr=[0 if s.n < 2 else s.std for s in summaries], capsize=3,
                   label=method, color=colours[method])
        floor, pixels = view.floor(dataset, metric), view.pixels(dataset, metric)
        if floor.n:
            ax.axhline(floor.mean, color="k", linestyle="--", label="untrained")
        if pixels.n:
            ax.axhline(pixels.mean, color="0.5", linestyle=":", label="raw pixels")
        ax.set_xticks(range(len(durations)), [f"{d} ep" for d in durations])
        ax.set_title(f"{dataset}: {metric}", fontsize=9)
        ax.legend(fontsize=7)
    return figure


def _reduction(view: View, dataset: str, duration: int, metric: str) -> float:
    st = view.summary(dataset, view.treatment, duration, metric)
    sb = view.summary(dataset, view.baseline, duration, metric)
    return (sb.mean - st.mean) / abs(sb.mean) * 100 if st.n and sb.n and sb.mean else math.nan


def _loss_improvement(view: View, colours: dict[str, Any]) -> Any:
    metrics, n = _loss_metrics(view), len(view.datasets)
    if not metrics:
        return None
    figure, axes = _figure(1, n, (3.6 * n, 3))
    width = 0.8 / len(metrics)
    low, high = paper.LOSS_REDUCTION_PERCENT
    for col, dataset in enumerate(view.datasets):
        ax = axes[0][col]
        for k, metric in enumerate(metrics):
            ax.bar([i + (k - (len(metrics) - 1) / 2) * width for i in range(len(view.durations))],
                   [_reduction(view, dataset, d, metric) for d in view.durations], width,
                   label="training loss" if metric == "train_loss" else "held-out loss")
        ax.axhspan(low, high, color="grey", alpha=0.25,
                   label=f"paper {paper.percent_range(paper.LOSS_REDUCTION_PERCENT)}")
        ax.axhline(0, color="k", linewidth=0.8)
        ax.set_xticks(range(len(view.durations)), [f"{d} ep" for d in view.durations])
        ax.set_ylabel(f"{view.treatment} lower by (%)")
        ax.set_title(dataset, fontsize=9)
        ax.legend(fontsize=7)
    return figure


def _accuracy_vs_duration(view: View, colours: dict[str, Any]) -> Any:
    return _metric_curves(view, colours, _accuracy_metrics(view),
                          lambda dataset, metric: f"{dataset}: {metric}", "epochs (0 = untrained)")


_DRAW = dict(zip(FIGURE_NAMES, (_loss_vs_duration, _early_vs_late, _early_learning,
                            _loss_improvement, _accuracy_vs_duration), strict=True))


def make_figures(results: Results, directory: str | os.PathLike[str]) -> dict[str, Path]:
    """Write the report's PNG figures into ``directory``; returns ``{name: path}``."""
    import matplotlib

    view = View(results)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if not view.datasets:
        return {}
    tab10 = matplotlib.colormaps["tab10"]
    colours = {m.name: tab10(k % 10) for k, m in enumerate(view.grid.methods)}
    figures: dict[str, Path] = {}
    for name, draw in _DRAW.items():
        figure = draw(view, colours)
        if figure is not None:
            figure.tight_layout()
            figures[name] = directory / f"{name}.png"
            figure.savefig(figures[name], dpi=80)
    return figures
