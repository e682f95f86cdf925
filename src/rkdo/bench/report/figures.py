"""The report's PNG figures, drawn with matplotlib's object API (no pyplot, no global backend).

    loss_vs_duration                   each method's training loss, and the held-out loss
    early_treatment_vs_late_baseline   treatment at ~2 epochs vs baseline at ~5
    early_learning                     accuracy after the first durations
    loss_improvement                   (B - T) / |B| in percent, beside the paper's range
    accuracy_vs_duration               accuracy curves, 0 = untrained

Every value is a mean over seeds drawn as a point with its 95% confidence interval,

    mean  ±  t_{0.975, n-1} * std / sqrt(n)          (no bar when n = 1),

never as a bar from 0, so a difference of 0.005 stays visible. Axes carry display names and
units, epoch axes integer ticks, and one legend per figure sits below the panels, clear of the
data. A floor (untrained encoder, raw pixels) far outside the data's range is named in a note
instead of stretching the axis. Figures are written at :data:`rkdo._figure_style.DPI` dots per
inch with its type sizes, as ``rkdo.viz`` writes its own, sized for a two-column page
(:data:`WIDTH` inches at most).

Every figure is a :class:`matplotlib.figure.Figure` rendered by ``FigureCanvasAgg``, so drawing
a report never switches the caller's matplotlib backend. matplotlib is imported only here, and
only when figures are made.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rkdo._figure_style import DPI, TYPE_SIZES
from rkdo.bench import paper
from rkdo.bench.report.view import View
from rkdo.bench.store import Results

__all__ = ["make_figures", "FIGURE_NAMES", "WIDTH", "mean_ci"]

FIGURE_NAMES = ("loss_vs_duration", "early_treatment_vs_late_baseline", "early_learning",
                "loss_improvement", "accuracy_vs_duration")
"""The figures' names, in the order they are drawn."""
WIDTH = 7.0
"""Inches: the width of a two-column page's text; a figure with one panel is half of it."""
_PANEL_HEIGHT = 2.5
_STYLE = {**TYPE_SIZES, "axes.grid": True, "grid.alpha": 0.3,
          "lines.markersize": 5, "errorbar.capsize": 3}
_SHORT = {"train_loss": "training loss", "heldout_icon_loss": "held-out I-Con loss",
          "linear_probe": "linear probe", "paper_linear_probe": "linear eval (paper protocol)",
          "knn_acc_20": "20-NN", "knn_acc_200": "200-NN"}
_AXIS = {"train_loss": "training loss (own objective)",
         "heldout_icon_loss": "held-out I-Con loss (nats)"}


def _short(metric: str) -> str:
    return _SHORT.get(metric, metric.replace("_", " "))


def _axis_label(metric: str) -> str:
    if metric.startswith("paper_"):
        return _AXIS.get(metric, "accuracy (~700 test images)")
    return _AXIS.get(metric, "accuracy (test split)")


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """``(mean, half-width of its 95% t interval)``; half-width 0 for fewer than 2 values."""
    from scipy.stats import t

    n = len(values)
    if n == 0:
        return math.nan, 0.0
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, float(t.ppf(0.975, n - 1)) * std / math.sqrt(n)


def _figure(panels: int) -> tuple[Any, list[Any]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = min(panels, 3)
    rows = math.ceil(panels / cols)
    width = WIDTH if cols > 1 else WIDTH / 2 + 0.3
    figure = Figure(figsize=(width, _PANEL_HEIGHT * rows + 0.6), layout="constrained")
    FigureCanvasAgg(figure)
    axes = list(figure.subplots(rows, cols, squeeze=False).ravel())
    for ax in axes[panels:]:
        ax.set_axis_off()
    return figure, axes[:panels]


def _legend(figure: Any, axes: list[Any], first: Sequence[str] = ()) -> None:
    """One legend for the figure, below the panels (never over the data); ``first`` leads."""
    seen: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    order = [label for label in first if label in seen] + [l for l in seen if l not in first]
    if seen:
        columns = max(1, int(figure.get_figwidth() / 1.6))
        figure.legend([seen[label] for label in order], order, loc="outside lower center",
                      ncol=min(len(order), columns), frameon=False)


def _epoch_ticks(ax: Any, ticks: Sequence[int]) -> None:
    ax.set_xticks(sorted(set(ticks)))
    ax.set_xlim(min(ticks) - 0.4, max(ticks) + 0.4)


def _floors(ax: Any, view: View, dataset: str, metric: str, low: float, high: float,
            untrained: bool = True) -> str:
    """The untrained and raw-pixel floors as lines where they are near the data, else a note
    (``untrained=False``: the untrained encoder is drawn as a point already)."""
    span = max(high - low, 1e-9)
    far = []
    for summary, name, style in ((view.floor(dataset, metric), "untrained", "--"),
                                 (view.pixels(dataset, metric), "raw pixels", ":")):
        if not summary.n or (name == "untrained" and not untrained):
            continue
        if low - span <= summary.mean <= high + span:
            ax.axhline(summary.mean, color="0.35", linestyle=style, linewidth=1, label=name)
        else:
            far.append(f"{name} {summary.mean:.3f}")
    return "(off scale: " + ", ".join(far) + ")" if far else ""


def _xlabel(ax: Any, text: str, note: str) -> None:
    ax.set_xlabel("\n".join(part for part in (text, note) if part))


def _points(ax: Any, xs: Sequence[float], cells: Sequence[Sequence[float]], **style: Any
            ) -> list[float]:
    """Means with 95% CI bars at ``xs``; returns the ends of the bars drawn."""
    kept = [(x, *mean_ci(values)) for x, values in zip(xs, cells, strict=True) if values]
    if not kept:
        return []
    x, mean, half = zip(*kept, strict=True)
    ax.errorbar(x, mean, yerr=half, marker="o", **style)
    return [m - h for m, h in zip(mean, half, strict=True)] + [
        m + h for m, h in zip(mean, half, strict=True)]


def _dodge(index: int, count: int, width: float = 0.18) -> float:
    return (index - (count - 1) / 2) * width


def _seeds(view: View, dataset: str, method: str, duration: int, metric: str) -> list[float]:
    return list(view.values(dataset, method, duration, metric).values())


def _curves(view: View, colours: dict[str, Any], metrics: list[str]) -> Any:
    """One panel per (metric, dataset): each method's mean and CI against duration."""
    if not metrics:
        return None
    cells = [(metric, dataset) for metric in metrics for dataset in view.datasets]
    figure, axes = _figure(len(cells))
    for ax, (metric, dataset) in zip(axes, cells, strict=True):
        ends: list[float] = []
        floor = view.floor(dataset, metric) if metric != "train_loss" else None
        for k, method in enumerate(view.methods):
            xs = [d + _dodge(k, len(view.methods)) for d in view.durations]
            values = [_seeds(view, dataset, method, d, metric) for d in view.durations]
            ends += _points(ax, xs, values, color=colours[method], label=method)
        if floor is not None and floor.n:
            ends += _points(ax, [0], [list(view.values(dataset, "untrained", 0, metric).values())],
                            color="0.35", label="untrained")
        note = (_floors(ax, view, dataset, metric, min(ends), max(ends), untrained=False)
                if ends and metric != "train_loss" else "")
        ticks = ([0] if floor is not None and floor.n else []) + list(view.durations)
        _epoch_ticks(ax, ticks)
        _xlabel(ax, "training epochs", note)
        ax.set_ylabel(_axis_label(metric))
        ax.set_title(_short(metric) + (f", {dataset}" if len(view.datasets) > 1 else ""),
                     loc="left")
    _legend(figure, axes, view.methods)
    return figure


def _loss_vs_duration(view: View, colours: dict[str, Any]) -> Any:
    return _curves(view, colours, [m for m in ("train_loss", "heldout_icon_loss")
                                   if view.has(m)])


def _accuracy_metrics(view: View) -> list[str]:
    return [m for m in dict.fromkeys((view.linear_metric(), "linear_probe", "knn_acc_20"))
            if view.has(m)]


def _accuracy_vs_duration(view: View, colours: dict[str, Any]) -> Any:
    return _curves(view, colours, _accuracy_metrics(view))


def _early_vs_late(view: View, colours: dict[str, Any]) -> Any:
    """Per metric and dataset: the treatment early and the baseline later, side by side."""
    early, late = view.near(2), view.near(5)
    metrics = _accuracy_metrics(view)
    if not (early < late and metrics):
        return None
    cells = [(metric, dataset) for metric in metrics for dataset in view.datasets]
    figure, axes = _figure(len(cells))
    pairs = ((view.treatment, early), (view.baseline, late))
    for ax, (metric, dataset) in zip(axes, cells, strict=True):
        ends: list[float] = []
        for k, (method, duration) in enumerate(pairs):
            ends += _points(ax, [k], [_seeds(view, dataset, method, duration, metric)],
                            color=colours[method], label=method)
        _xlabel(ax, "", _floors(ax, view, dataset, metric, min(ends), max(ends)) if ends else "")
        ax.set_xticks([0, 1], [f"{m}\n{d} epochs" for m, d in pairs])
        ax.set_xlim(-0.6, 1.6)
        ax.set_ylabel(_axis_label(metric))
        ax.set_title(_short(metric) + (f", {dataset}" if len(view.datasets) > 1 else ""),
                     loc="left")
    _legend(figure, axes, view.methods)
    return figure


def _early_learning(view: View, colours: dict[str, Any]) -> Any:
    """The first accuracy metric after the first durations (up to 2 epochs), per dataset."""
    metrics = _accuracy_metrics(view)
    if not metrics:
        return None
    metric = metrics[0]
    durations = [d for d in view.durations if d <= 2] or view.durations[:1]
    figure, axes = _figure(len(view.datasets))
    for ax, dataset in zip(axes, view.datasets, strict=True):
        ends: list[float] = []
        for k, method in enumerate(view.methods):
            ends += _points(ax, [i + _dodge(k, len(view.methods)) for i in range(len(durations))],
                            [_seeds(view, dataset, method, d, metric) for d in durations],
                            color=colours[method], label=method, linestyle="none")
        _xlabel(ax, "", _floors(ax, view, dataset, metric, min(ends), max(ends)) if ends else "")
        ax.set_xticks(range(len(durations)), [f"{d} epoch{'s' * (d != 1)}" for d in durations])
        ax.set_xlim(-0.6, len(durations) - 0.4)
        ax.set_ylabel(_axis_label(metric))
        ax.set_title(_short(metric) + (f", {dataset}" if len(view.datasets) > 1 else ""),
                     loc="left")
    _legend(figure, axes, view.methods)
    return figure


def _reductions(view: View, dataset: str, duration: int, metric: str) -> list[float]:
    """Per seed, ``(B - T) / |B|`` in percent (paired by seed)."""
    t = view.values(dataset, view.treatment, duration, metric)
    b = view.values(dataset, view.baseline, duration, metric)
    return [(b[s] - t[s]) / abs(b[s]) * 100 for s in sorted(set(t) & set(b)) if b[s]]


def _loss_improvement(view: View, colours: dict[str, Any]) -> Any:
    metrics = [m for m in ("train_loss", "heldout_icon_loss") if view.has(m)]
    if not metrics:
        return None
    figure, axes = _figure(len(view.datasets))
    low, high = paper.LOSS_REDUCTION_PERCENT
    for ax, dataset in zip(axes, view.datasets, strict=True):
        ax.axhspan(low, high, color="0.6", alpha=0.3,
                   label=f"paper: {paper.percent_range(paper.LOSS_REDUCTION_PERCENT)}")
        ax.axhline(0, color="k", linewidth=0.8)
        for k, metric in enumerate(metrics):
            _points(ax, [d + _dodge(k, len(metrics)) for d in view.durations],
                    [_reductions(view, dataset, d, metric) for d in view.durations],
                    color=f"C{k + 2}", label=_short(metric), linestyle="none")
        _epoch_ticks(ax, view.durations)
        ax.set_xlabel("training epochs")
        ax.set_ylabel(f"{view.treatment} lower than {view.baseline} (%)")
        ax.set_title(dataset)
    _legend(figure, axes, view.methods)
    return figure


_DRAW: dict[str, Callable[[View, dict[str, Any]], Any]] = dict(zip(
    FIGURE_NAMES, (_loss_vs_duration, _early_vs_late, _early_learning, _loss_improvement,
                   _accuracy_vs_duration), strict=True))


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
    with matplotlib.rc_context(_STYLE):
        for name, draw in _DRAW.items():
            figure = draw(view, colours)
            if figure is not None:
                figures[name] = directory / f"{name}.png"
                figure.savefig(figures[name], dpi=DPI)
    return figures
