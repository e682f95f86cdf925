"""The report's markdown tables, and how a number is written in them.

    cell         mean ± std (n=N)                      "--" when there is no value
    difference   +diff [+ci_low, +ci_high]             treatment − baseline, paired by seed
    p-value      3 significant digits                  "n too small" when a test cannot run

Tables 1-4 mirror the paper's (final loss, accuracy across durations, early treatment vs later
baseline, every metric at one duration); :func:`efficiency` is the duration at which each method
first reaches the other's best mean (linear interpolation,
:func:`rkdo.evaluation.stats.epochs_to_reach`); :func:`profile_section` and :func:`throughput`
are the cost per step and per run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rkdo.bench import paper
from rkdo.bench.flops import StepProfile, format_table, time_verdict
from rkdo.bench.grid import FLOOR, PIXELS
from rkdo.bench.report.view import LOWER_IS_BETTER, NAMES, View
from rkdo.evaluation import stats

__all__ = ["format_p", "format_cell", "format_diff", "markdown_table", "loss_table",
           "across_durations", "early_vs_late", "multi_metric", "efficiency", "profile_section",
           "throughput"]


def format_p(value: float | None, note: str) -> str:
    if value is None:
        return "n too small" if note.startswith("n too small") else "--"
    return f"{value:.3g}"


def format_cell(summary: stats.Summary, digits: int = 4) -> str:
    if summary.n == 0:
        return "--"
    return f"{summary.format(digits)} (n={summary.n})"


def format_diff(comparison: stats.PairedComparison | None, digits: int = 4) -> str:
    if comparison is None:
        return "--"
    ci = comparison.ci
    interval = f" [{ci[0]:+.{digits}f}, {ci[1]:+.{digits}f}]" if ci is not None else ""
    return f"{comparison.mean_diff:+.{digits}f}{interval}"


def _tests(comparison: stats.PairedComparison | None) -> list[str]:
    """The t-test and Wilcoxon p-value cells of a comparison."""
    if comparison is None:
        return ["--", "--"]
    return [format_p(comparison.t_pvalue, comparison.t_note),
            format_p(comparison.wilcoxon_pvalue, comparison.wilcoxon_note)]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def loss_table(view: View, dataset: str, metric: str, with_paper: bool) -> str:
    t, b = view.treatment, view.baseline
    header = ["epochs", f"{t}", f"{b}", f"{t} lower by", f"{t} − {b} [95% CI]", "t-test p",
              "Wilcoxon p"]
    if with_paper:
        header.append("paper: lower by")
    rows = []
    if metric == "heldout_icon_loss" and view.floor(dataset, metric).n:
        floor = view.floor(dataset, metric)
        rows.append(["0 (untrained)", format_cell(floor), format_cell(floor), "--", "--", "--",
                     "--"] + (["--"] if with_paper else []))
    for duration in view.durations:
        st, sb = view.summary(dataset, t, duration, metric), view.summary(dataset, b, duration,
                                                                           metric)
        if not (st.n and sb.n):
            continue
        comparison = view.compare(dataset, (t, duration), (b, duration), metric)
        reduction = (sb.mean - st.mean) / abs(sb.mean) * 100 if sb.mean else math.nan
        row = [str(duration), format_cell(st), format_cell(sb), f"{reduction:.1f}%",
               format_diff(comparison), *_tests(comparison)]
        if with_paper:
            row.append(paper.percent_range(paper.LOSS_REDUCTION_PERCENT))
        rows.append(row)
    return markdown_table(header, rows)


def across_durations(view: View, dataset: str, metric: str, with_paper: bool) -> str:
    header = ["epochs", "method", "mean ± std (n)", f"− {view.baseline} [95% CI]", "t-test p",
              "Wilcoxon p"]
    if with_paper:
        header.append("paper")
    rows = []
    for name in (PIXELS, FLOOR):
        floor = view.floor(dataset, metric, name)
        if floor.n:
            rows.append(["0", name, format_cell(floor), "--", "--", "--"]
                        + (["--"] if with_paper else []))
    for duration in view.durations:
        for method in view.methods:
            summary = view.summary(dataset, method, duration, metric)
            if not summary.n:
                continue
            comparison = None
            if method != view.baseline:
                comparison = view.compare(dataset, (method, duration), (view.baseline, duration),
                                          metric)
            row = [str(duration), method, format_cell(summary), format_diff(comparison),
                   *_tests(comparison)]
            if with_paper:
                published = paper.LINEAR_EVAL.get((dataset, view.role(method), duration))
                row.append("--" if published is None else str(published))
            rows.append(row)
    return markdown_table(header, rows)


def early_vs_late(view: View, dataset: str, metric: str, with_paper: bool) -> str:
    t, b = view.treatment, view.baseline
    header = [f"{t} at", f"{b} at", f"{t}", f"{b}", f"{t} − {b} [95% CI]", "t-test p",
              "Wilcoxon p"]
    if with_paper:
        header.append("paper")
    rows = []
    for early in view.durations:
        for late in view.durations:
            if late <= early:
                continue
            st = view.summary(dataset, t, early, metric)
            sb = view.summary(dataset, b, late, metric)
            if not (st.n and sb.n):
                continue
            comparison = view.compare(dataset, (t, early), (b, late), metric)
            row = [str(early), str(late), format_cell(st), format_cell(sb),
                   format_diff(comparison), *_tests(comparison)]
            if with_paper:
                row.append(paper.early_vs_late(dataset, early, late) or "--")
            rows.append(row)
    return markdown_table(header, rows)


def multi_metric(view: View, dataset: str, metrics: Sequence[str], duration: int) -> str:
    pixels = any(view.pixels(dataset, metric).n for metric in metrics)
    header = ["metric", *([PIXELS] if pixels else []), FLOOR, *view.methods,
              f"{view.treatment} − {view.baseline} [95% CI]", "t-test p", "Wilcoxon p"]
    rows = []
    for metric in metrics:
        if not view.has(metric):
            continue
        comparison = view.compare(dataset, (view.treatment, duration),
                                  (view.baseline, duration), metric)
        rows.append([
            NAMES.get(metric, metric) + (" (lower is better)" if metric in LOWER_IS_BETTER
                                         else ""),
            *([format_cell(view.pixels(dataset, metric))] if pixels else []),
            format_cell(view.floor(dataset, metric)),
            *(format_cell(view.summary(dataset, m, duration, metric)) for m in view.methods),
            format_diff(comparison), *_tests(comparison),
        ])
    return markdown_table(header, rows)


def _reach(view: View, dataset: str, metric: str, leader: str,
           follower: str) -> dict[str, Any] | None:
    """When ``follower``'s mean curve first reaches ``leader``'s best mean."""
    higher = metric not in LOWER_IS_BETTER
    d_lead, v_lead = view.mean_curve(dataset, leader, metric)
    d_follow, v_follow = view.mean_curve(dataset, follower, metric)
    if not d_lead or not d_follow:
        return None
    best = (max if higher else min)(v_lead)
    best_at = d_lead[v_lead.index(best)]
    reach = stats.epochs_to_reach(d_follow, v_follow, best, higher_is_better=higher)
    saved = None if reach.status == "never" else (1 - reach.duration / best_at) * 100
    return {"dataset": dataset, "metric": metric, "leader": leader, "follower": follower,
            "best": best, "best_at": best_at, "reach": reach, "saved": saved,
            "floor": view.floor(dataset, metric), "higher": higher}


def efficiency(view: View, metrics: Sequence[str]) -> tuple[str, list[dict[str, Any]]]:
    """Each method's first duration reaching the other's best mean (interpolated)."""
    t, b = view.treatment, view.baseline
    header = ["dataset", "metric", "best of", "its best (epochs)", "reached by", "at epochs",
              "epochs saved", "untrained"]
    rows, facts = [], []
    for dataset in view.datasets:
        for metric in metrics:
            if not view.has(metric):
                continue
            for leader, follower in ((b, t), (t, b)):
                fact = _reach(view, dataset, metric, leader, follower)
                if fact is None:
                    continue
                saved, reach, floor = fact["saved"], fact["reach"], fact["floor"]
                if saved is None:
                    saved_text = "never reached"
                else:
                    saved_text = f"≥ {saved:.0f}%" if reach.status == "first" else f"{saved:.0f}%"
                rows.append([dataset, metric, leader, f"{fact['best']:.4f} ({fact['best_at']})",
                             follower, reach.format(3), saved_text,
                             f"{floor.mean:.4f}" if floor.n else "--"])
                facts.append(fact)
    return markdown_table(header, rows), facts


def _depth_fact(view: View, dataset: str, profiles: list[StepProfile]) -> dict[str, Any] | None:
    """The treatment's deepest recursion against depth 1: FLOPs and time, in percent."""
    depth = {p.label.rsplit(" ", 1)[-1]: p for p in profiles
             if p.label.startswith(view.treatment + " depth")}
    deepest = max(depth, key=int) if depth else None
    if "1" not in depth or not deepest or deepest == "1":
        return None
    one, many, first = depth["1"], depth[deepest], profiles[0]
    return {
        "dataset": dataset, "depth": int(deepest),
        "forward": (many.forward_flops / one.forward_flops - 1) * 100,
        "train": (many.train_flops / one.train_flops - 1) * 100,
        "time": (many.median_step_seconds / one.median_step_seconds - 1) * 100
        if one.median_step_seconds > 0 else math.nan,
        "time_words": time_verdict(many, one), "timed_steps": many.timed_steps,
        "load": many.load_average,
        "gflops": (one.forward_gflops, many.forward_gflops),
        "encoder": first.encoder, "batch": first.batch_size, "image_size": first.image_size,
    }


def profile_section(view: View) -> tuple[str, list[dict[str, Any]]]:
    """The profile jobs' tables, and per dataset the treatment's depth overhead facts."""
    parts, facts = [], []
    for dataset, rows in view.results.profiles.items():
        profiles = [StepProfile(**row) for row in rows]
        if not profiles:
            continue
        first = profiles[0]
        parts.append(f"**{dataset}** ({first.encoder}, batch {first.batch_size}, "
                     f"{first.image_size} px, two views per step, {first.device}, "
                     f"{first.threads} thread(s), median [min, max] of {first.timed_steps} "
                     "timed steps):\n")
        parts.append(format_table(profiles, markdown=True) + "\n")
        fact = _depth_fact(view, dataset, profiles)
        if fact is not None:
            facts.append(fact)
    return "\n".join(parts), facts


def throughput(view: View) -> str:
    rows = []
    for dataset in view.datasets:
        for method in view.methods:
            runs = [r for r in view.results.records.values()
                    if r.get("kind") == "train" and r["dataset"] == dataset
                    and r["method"] == method]
            speeds = [r.get("images_per_s") for r in runs if r.get("images_per_s")]
            if speeds:
                summary = stats.summarize(speeds)
                seconds = stats.summarize([r["wall_seconds"] for r in runs])
                rows.append([dataset, method, f"{summary.mean:.0f}", f"{seconds.mean:.0f}"])
    return markdown_table(["dataset", "method",
                           "training images/s (median per run, mean over runs)",
                           "wall seconds per run (incl. evaluations)"], rows) + (
        "\n\nWall-clock numbers, on the machine as loaded while the grid ran (other processes "
        "and parallel workers included); the per-step FLOPs above do not depend on load.")
