"""The label-noise report (issue 21): which teacher wins at each noise level, paired by seed.

A label-noise grid (``grids/fashion-noise.toml``) names its methods ``TEACHER.CONDITION``
(``supcon.sym40``, ``ce-bootstrap-hard.asym40``, ...) and evaluates with the ``noisy`` protocol
(:mod:`rkdo.evaluation.noisy`). For each condition and metric ``m`` this module reads the
per-seed values ``m(teacher, seed)`` and reports

    mean +- sd over seeds                                  per teacher
    d_s = m(teacher, s) - m(supcon, s)                     paired by seed against static SupCon
    mean d, 95% bootstrap CI of mean d, paired t-test p    (:func:`rkdo.evaluation.stats.
                                                           paired_comparison`)
    the winner (highest mean) and its paired margin over the runner-up

Metrics: ``clean_probe`` (representation: linear probe on clean labels), ``knn_noisy_20``
(what a user with only the noisy labels gets), ``head_acc`` (the cross-entropy rows' own
classifier). A comparison with fewer than 2 paired seeds has no CI and says so. A difference is
marked when its bootstrap CI excludes zero and its paired t-test p < 0.05.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from rkdo.bench.store import read_results
from rkdo.evaluation.stats import paired_comparison

__all__ = ["NOISE_METRICS", "RECURSIVE", "noise_values", "build_noise_report",
           "recursion_table"]

NOISE_METRICS = {
    "clean_probe": "linear probe (clean 1,000)",
    "knn_noisy_20": "20-NN (noisy labels)",
    "head_acc": "own classifier",
}
STATIC = "supcon"
RECURSIVE = ("supcon-instep", "supcon-temporal", "supcon-temporal-annealed")
"""The recursive teachers compared with static SupCon in the README table."""

_CONDITIONS = {"sym0": "0% (clean)", "sym20": "20% symmetric", "sym40": "40% symmetric",
               "sym60": "60% symmetric", "asym40": "40% asymmetric (24% overall)"}
_DISPLAY = {
    "supcon": "SupCon (static)",
    "supcon-instep": "SupCon, in-step recursive",
    "supcon-temporal": "SupCon, temporal (alpha 0.5)",
    "supcon-temporal-annealed": "SupCon, temporal (alpha 0.5 -> 0)",
    "supcon-ema": "SupCon + EMA teacher",
    "ce": "cross-entropy",
    "ce-bootstrap-hard": "CE + hard bootstrapping",
    "ce-bootstrap-soft": "CE + soft bootstrapping",
    "icon": "I-Con (no labels)",
}

Values = dict[str, dict[str, dict[str, dict[int, float]]]]
"""condition -> teacher -> metric -> seed -> value."""


def noise_values(store: str | os.PathLike[str], duration: int) -> Values:
    """The per-seed metrics of a label-noise store after ``duration`` epochs."""
    values: Values = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
    for record in read_results(store).values():
        if record.get("kind") != "train" or record.get("status") != "ok":
            continue
        teacher, _, condition = str(record["method"]).rpartition(".")
        metrics = (record.get("durations") or {}).get(str(duration))
        if not teacher or metrics is None:
            continue
        for metric in NOISE_METRICS:
            if metrics.get(metric) is not None:
                values[condition][teacher][metric][int(record["seed"])] = float(metrics[metric])
    return values


def _paired(a: dict[int, float], b: dict[int, float]) -> tuple[str, str, str, int, bool]:
    """(mean difference, 95% CI, t-test p, n, significant) of ``a - b`` over common seeds;
    significant: the bootstrap CI excludes zero *and* the paired t-test gives p < 0.05 (at 5
    seeds the percentile bootstrap interval alone is too narrow to carry a verdict)."""
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return "n/a", "n/a (fewer than 2 seeds)", "n/a", len(seeds), False
    result = paired_comparison([a[s] for s in seeds], [b[s] for s in seeds])
    ci = f"[{result.ci[0]:+.4f}, {result.ci[1]:+.4f}]" if result.ci else "n/a"
    p = f"{result.t_pvalue:.3g}" if result.t_pvalue is not None else result.t_note
    significant = result.ci_excludes_zero and result.t_pvalue is not None and \
        result.t_pvalue < 0.05
    return f"{result.mean_diff:+.4f}", ci, p, len(seeds), significant


def _mean_sd(values: dict[int, float]) -> str:
    import numpy as np

    array = np.array(list(values.values()))
    sd = f" +- {array.std(ddof=1):.4f}" if array.size > 1 else ""
    return f"{array.mean():.4f}{sd} (n={array.size})"


def _name(teacher: str) -> str:
    return _DISPLAY.get(teacher, teacher)


def _conditions(values: Values) -> list[str]:
    return [c for c in _CONDITIONS if c in values] + sorted(set(values) - set(_CONDITIONS))


def recursion_table(values: Values, metrics: tuple[str, ...] = ("clean_probe", "knn_noisy_20"),
                    reference: str = STATIC) -> str:
    """Recursive SupCon vs ``reference`` (static SupCon by default) per noise level: paired
    difference, 95% CI, p (markdown)."""
    short = "static" if reference == STATIC else _name(reference)
    head = "| noise | recursive teacher | " + " | ".join(
        f"{NOISE_METRICS[m]}: recursive - {short} [95% CI], p" for m in metrics) + " | seeds |"
    lines = [head, "|---|---|" + "---|" * len(metrics) + "---|"]
    for condition in _conditions(values):
        static = values[condition].get(reference, {})
        for teacher in RECURSIVE:
            mine = values[condition].get(teacher)
            if mine is None:
                continue
            cells, n = [], 0
            for metric in metrics:
                diff, ci, p, n, excludes = _paired(mine.get(metric, {}), static.get(metric, {}))
                mark = " **CI excludes 0, p < 0.05**" if excludes else ""
                cells.append(f"{diff} {ci}, p = {p}{mark}")
            lines.append(f"| {_CONDITIONS.get(condition, condition)} | {_name(teacher)} | "
                         + " | ".join(cells) + f" | {n} |")
    return "\n".join(lines)


def _winners(values: Values, metric: str) -> list[str]:
    lines = [f"| noise | winner ({NOISE_METRICS[metric]}) | mean | runner-up | winner - "
             "runner-up [95% CI], p | seeds |", "|---|---|---|---|---|---|"]
    for condition in _conditions(values):
        entries = {t: m[metric] for t, m in values[condition].items() if m.get(metric)}
        if metric == "clean_probe":
            entries.pop("icon", None)  # the label-free floor, not a teacher of noisy labels
        if len(entries) < 2:
            continue
        ranked = sorted(entries, key=lambda t: -sum(entries[t].values()) / len(entries[t]))
        first, second = ranked[0], ranked[1]
        diff, ci, p, n, _ = _paired(entries[first], entries[second])
        mean = sum(entries[first].values()) / len(entries[first])
        lines.append(f"| {_CONDITIONS.get(condition, condition)} | {_name(first)} | "
                     f"{mean:.4f} | {_name(second)} | {diff} {ci}, p = {p} | {n} |")
    return "\n".join(lines)


def _against_static(values: Values, condition: str) -> list[str]:
    static = values[condition].get(STATIC, {})
    lines = ["| teacher | " + " | ".join(f"{label}: mean +- sd" for label in
                                         NOISE_METRICS.values())
             + " | probe - SupCon [95% CI], p | 20-NN - SupCon [95% CI], p |",
             "|---|" + "---|" * (len(NOISE_METRICS) + 2)]
    for teacher, metrics in values[condition].items():
        cells = [_mean_sd(metrics[m]) if metrics.get(m) else "-" for m in NOISE_METRICS]
        for metric in ("clean_probe", "knn_noisy_20"):
            if teacher == STATIC or not metrics.get(metric):
                cells.append("-")
                continue
            diff, ci, p, _, excludes = _paired(metrics[metric], static.get(metric, {}))
            mark = " **CI excludes 0, p < 0.05**" if excludes else ""
            cells.append(f"{diff} {ci}, p = {p}{mark}")
        lines.append(f"| {_name(teacher)} | " + " | ".join(cells) + " |")
    return lines


def build_noise_report(store: str | os.PathLike[str], durations: tuple[int, ...] = (5,)
                       ) -> str:
    """The markdown report of a label-noise store (every duration given, first one first)."""
    parts: list[str] = []
    for duration in durations:
        values = noise_values(store, duration)
        if not values:
            parts.append(f"No finished label-noise cells after {duration} epochs in {store}.")
            continue
        parts += [f"## After {duration} epochs", "",
                  "### Recursive vs static SupCon (paired by seed)", "",
                  recursion_table(values), "",
                  "### Recursive SupCon vs CE + hard bootstrapping (the field's baseline)", "",
                  recursion_table(values, reference="ce-bootstrap-hard"), ""]
        for metric in ("clean_probe", "knn_noisy_20", "head_acc"):
            parts += [f"### Which teacher wins: {NOISE_METRICS[metric]}", "",
                      _winners(values, metric), ""]
        parts += ["### Every teacher against static SupCon", ""]
        for condition in _conditions(values):
            parts += [f"#### Noise {_CONDITIONS.get(condition, condition)}", "",
                      *_against_static(values, condition), ""]
    return "\n".join(parts)


def floors(store: str | os.PathLike[str]) -> dict[str, Any]:
    """The floors' clean probe per seed: untrained encoder, raw pixels (duration 0)."""
    out: dict[str, dict[int, float]] = defaultdict(dict)
    for record in read_results(store).values():
        if record.get("kind") in ("floor", "pixels") and record.get("status") == "ok":
            metrics = (record.get("durations") or {}).get("0", {})
            if "clean_probe" in metrics:
                out[str(record["method"])][int(record["seed"])] = float(metrics["clean_probe"])
    return {name: _mean_sd(v) for name, v in out.items()}


def write_noise_report(store: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Write :func:`build_noise_report` (with the floors) to ``out``; returns the path."""
    path = Path(out)
    floor_lines = [f"- {name}: clean linear probe {value}" for name, value in
                   sorted(floors(store).items())]
    text = "\n".join(["# Label-noise report (generated)", "", f"Store: `{store}`", "",
                      "Floors (duration 0, noise-free probe):", "", *floor_lines, "",
                      build_noise_report(store)])
    path.write_text(text + "\n")
    return path


def noise_figure(values: Values, path: str | os.PathLike[str],
                 teachers: tuple[str, ...] = (*RECURSIVE, "supcon-ema", "ce",
                                              "ce-bootstrap-hard")) -> Path:
    """Each teacher's paired difference to static SupCon (mean and 95% CI) per noise level,
    one panel per metric (clean probe, noisy 20-NN); a PNG at 200 dpi."""
    from matplotlib.figure import Figure

    conditions = _conditions(values)
    metrics = ("clean_probe", "knn_noisy_20")
    figure = Figure(figsize=(7.0, 4.0), dpi=200, layout="constrained")
    axes = figure.subplots(1, 2, sharey=False)
    width = 0.8 / max(len(teachers), 1)
    for ax, metric in zip(axes, metrics, strict=True):
        for k, teacher in enumerate(teachers):
            xs, means, lows, highs = [], [], [], []
            for i, condition in enumerate(conditions):
                mine = values[condition].get(teacher, {}).get(metric, {})
                static = values[condition].get(STATIC, {}).get(metric, {})
                seeds = sorted(set(mine) & set(static))
                if len(seeds) < 2:
                    continue
                result = paired_comparison([mine[s] for s in seeds], [static[s] for s in seeds])
                if result.ci is None:
                    continue
                xs.append(i - 0.4 + (k + 0.5) * width)
                means.append(result.mean_diff)
                lows.append(result.mean_diff - result.ci[0])
                highs.append(result.ci[1] - result.mean_diff)
            if xs:
                ax.errorbar(xs, means, yerr=[lows, highs], fmt="o", ms=3, capsize=2,
                            label=_name(teacher))
        ax.axhline(0.0, color="0.4", lw=0.8)
        ax.set_xticks(range(len(conditions)))
        ax.set_xticklabels([f"{c[4:]} asym." if c.startswith("asym") else c[3:]
                            for c in conditions], fontsize=7)
        ax.set_xlabel("training-label noise (%)", fontsize=8)
        ax.set_ylabel(f"{NOISE_METRICS[metric]}\nminus static SupCon (accuracy)", fontsize=8)
        ax.tick_params(labelsize=7)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=7)
    path = Path(path)
    figure.savefig(path, dpi=200)
    return path
