"""The benchmark report: the paper's tables rebuilt from a result store, figures and verdicts.

For a store written by ``rkdo bench`` (:mod:`rkdo.bench.runner`), with treatment ``T`` (RKDO) and
baseline ``B`` (I-Con) paired by seed, every comparison is

    diff = mean_s (T_s - B_s),   95% bootstrap CI of diff,   paired t-test,   Wilcoxon test

(:mod:`rkdo.evaluation.stats`; tests that n is too small for are not run). ``report.md`` holds:

1. Table 1, final training loss: each method's own loss (the paper's comparison), then the
   same static I-Con loss on held-out images for both (a common yardstick);
2. Table 2, linear evaluation across durations, with the untrained encoder as a floor row;
3. Table 3, early T vs later B (the paper's "RKDO at 2 epochs vs I-Con at 5");
4. Table 4, every metric at 2 epochs;
5. the same tables on the fair yardsticks (full test split: linear probe, k-NN, held-out loss);
6. compute efficiency: the duration at which each method first reaches the other's best
   accuracy (linear interpolation, :func:`rkdo.evaluation.stats.epochs_to_reach`), i.e. the paper's
   "60-80% fewer epochs", tested; FLOPs and time per step;
7. a verdict for each of the paper's claims, from our numbers only.

Published values appear only where the paper gives them (MISSION.md); nothing else is filled in.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rkdo.evaluation import stats
from rkdo.bench.runner import FLOOR, Results, load_results

__all__ = ["PAPER", "write_report", "build_report", "make_figures"]

PAPER: dict[str, Any] = {
    "loss_reduction": (27.0, 34.0),
    "linear": {
        ("cifar10", "treatment", 5): "0.3078 ± 0.037",
        ("cifar10", "baseline", 5): "0.3291 ± 0.021",
        ("stl10", "treatment", 2): "0.2225",
        ("stl10", "baseline", 5): "0.2197",
    },
    "early_vs_late": {("stl10", 2, 5): "0.2225 vs 0.2197 (+0.0028)"},
    "epochs_saved": (60.0, 80.0),
    "gflops": {"depth 1": 9.5537, "depth 3": 9.5545},
    "flop_overhead_percent": 0.03,
}
"""The paper's published numbers that we have (MISSION.md); roles, not method names."""

LOWER_IS_BETTER = ("train_loss", "heldout_icon_loss")
FAIR_METRICS = ("linear_probe", "knn_acc_20", "knn_acc_200", "heldout_icon_loss")
FULL_MULTI = ("linear_probe", "knn_acc_20", "knn_acc_200", "nmi", "ari", "cluster_acc",
              "neighbourhood_acc_5", "heldout_icon_loss")
PAPER_MULTI = ("paper_linear_probe", "paper_nmi", "paper_ari", "paper_neighbourhood_acc_5")
NAMES = {
    "train_loss": "training loss (each method's own)",
    "heldout_icon_loss": "held-out static I-Con loss",
    "linear_probe": "linear probe accuracy (full test split)",
    "knn_acc_20": "20-NN accuracy (full test split)",
    "knn_acc_200": "200-NN accuracy (full test split)",
    "nmi": "k-means NMI", "ari": "k-means ARI", "cluster_acc": "k-means accuracy",
    "neighbourhood_acc_5": "5-NN neighbourhood accuracy",
    "paper_linear_probe": "linear eval, paper protocol (~700 test images)",
    "paper_nmi": "NMI, paper protocol", "paper_ari": "ARI, paper protocol",
    "paper_neighbourhood_acc_5": "5-NN neighbourhood accuracy, paper protocol",
}


# ----------------------------------------------------------------------------- data access


class _View:
    """Per-seed values of a store's rows, and paired comparisons between cells."""

    def __init__(self, results: Results) -> None:
        self.results = results
        self.grid = results.grid
        self.treatment, self.baseline = self.grid.treatment, self.grid.baseline
        self.methods = results.methods
        self.datasets = [d.dataset for d in self.grid.datasets
                         if any(r["dataset"] == d.dataset for r in results.rows)]
        self.durations = list(self.grid.durations)
        self.keys = {k for row in results.rows for k, v in row.items()
                     if isinstance(v, (int, float)) and v is not None}
        self._index: dict[tuple[str, str, int], dict[int, dict[str, Any]]] = {}
        for row in results.rows:
            self._index.setdefault((row["dataset"], row["method"], row["duration"]), {})[
                row["seed"]] = row

    def has(self, metric: str) -> bool:
        return metric in self.keys

    def values(self, dataset: str, method: str, duration: int, metric: str) -> dict[int, float]:
        cell = self._index.get((dataset, method, duration), {})
        found = {}
        for seed, row in cell.items():
            value = row.get(metric)
            if isinstance(value, (int, float)) and math.isfinite(value):
                found[seed] = float(value)
        return found

    def summary(self, dataset: str, method: str, duration: int, metric: str) -> stats.Summary:
        return stats.summarize(list(self.values(dataset, method, duration, metric).values()))

    def floor(self, dataset: str, metric: str) -> stats.Summary:
        return self.summary(dataset, FLOOR, 0, metric)

    def compare(self, dataset: str, a: tuple[str, int], b: tuple[str, int],
                metric: str) -> stats.PairedComparison | None:
        va = self.values(dataset, a[0], a[1], metric)
        vb = self.values(dataset, b[0], b[1], metric)
        seeds = sorted(set(va) & set(vb))
        if not seeds:
            return None
        return stats.paired_comparison([va[s] for s in seeds], [vb[s] for s in seeds])

    def mean_curve(self, dataset: str, method: str, metric: str) -> tuple[list[int], list[float]]:
        durations, means = [], []
        for duration in self.durations:
            summary = self.summary(dataset, method, duration, metric)
            if summary.n:
                durations.append(duration)
                means.append(summary.mean)
        return durations, means

    def linear_metric(self) -> str:
        return "paper_linear_probe" if self.has("paper_linear_probe") else "linear_probe"

    def near(self, target: int) -> int:
        return min(self.durations, key=lambda d: (abs(d - target), d))


# ----------------------------------------------------------------------------- formatting


def _f(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "--"
    return f"{value:.{digits}f}"


def _p(value: float | None, note: str) -> str:
    if value is None:
        return "n too small" if note.startswith("n too small") else "--"
    return f"{value:.3g}"


def _cell(summary: stats.Summary, digits: int = 4) -> str:
    if summary.n == 0:
        return "--"
    return f"{summary.format(digits)} (n={summary.n})"


def _diff(comparison: stats.PairedComparison | None, digits: int = 4) -> str:
    if comparison is None:
        return "--"
    ci = comparison.ci
    interval = f" [{ci[0]:+.{digits}f}, {ci[1]:+.{digits}f}]" if ci is not None else ""
    return f"{comparison.mean_diff:+.{digits}f}{interval}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _role(view: _View, method: str) -> str | None:
    if method == view.treatment:
        return "treatment"
    if method == view.baseline:
        return "baseline"
    return None


# ----------------------------------------------------------------------------- tables


def _loss_table(view: _View, dataset: str, metric: str, paper: bool) -> str:
    t, b = view.treatment, view.baseline
    header = ["epochs", f"{t}", f"{b}", f"{t} lower by", f"{t} − {b} [95% CI]", "t-test p",
              "Wilcoxon p"]
    if paper:
        header.append("paper: lower by")
    rows = []
    if metric == "heldout_icon_loss" and view.floor(dataset, metric).n:
        floor = view.floor(dataset, metric)
        rows.append(["0 (untrained)", _cell(floor), _cell(floor), "--", "--", "--", "--"]
                    + (["--"] if paper else []))
    for duration in view.durations:
        st, sb = view.summary(dataset, t, duration, metric), view.summary(dataset, b, duration,
                                                                           metric)
        if not (st.n and sb.n):
            continue
        comparison = view.compare(dataset, (t, duration), (b, duration), metric)
        reduction = (sb.mean - st.mean) / abs(sb.mean) * 100 if sb.mean else math.nan
        row = [str(duration), _cell(st), _cell(sb), f"{reduction:.1f}%", _diff(comparison),
               _p(comparison.t_pvalue, comparison.t_note) if comparison else "--",
               _p(comparison.wilcoxon_pvalue, comparison.wilcoxon_note) if comparison else "--"]
        if paper:
            low, high = PAPER["loss_reduction"]
            row.append(f"{low:.0f}-{high:.0f}%")
        rows.append(row)
    return _table(header, rows)


def _across_durations(view: _View, dataset: str, metric: str, paper: bool) -> str:
    header = ["epochs", "method", "mean ± std (n)", f"− {view.baseline} [95% CI]", "t-test p",
              "Wilcoxon p"]
    if paper:
        header.append("paper")
    rows = []
    floor = view.floor(dataset, metric)
    if floor.n:
        rows.append(["0", FLOOR, _cell(floor), "--", "--", "--"] + (["--"] if paper else []))
    for duration in view.durations:
        for method in view.methods:
            summary = view.summary(dataset, method, duration, metric)
            if not summary.n:
                continue
            comparison = None
            if method != view.baseline:
                comparison = view.compare(dataset, (method, duration), (view.baseline, duration),
                                          metric)
            row = [str(duration), method, _cell(summary), _diff(comparison),
                   _p(comparison.t_pvalue, comparison.t_note) if comparison else "--",
                   _p(comparison.wilcoxon_pvalue, comparison.wilcoxon_note)
                   if comparison else "--"]
            if paper:
                role = _role(view, method)
                row.append(PAPER["linear"].get((dataset, role, duration), "--"))
            rows.append(row)
    return _table(header, rows)


def _early_vs_late(view: _View, dataset: str, metric: str, paper: bool) -> str:
    t, b = view.treatment, view.baseline
    header = [f"{t} at", f"{b} at", f"{t}", f"{b}", f"{t} − {b} [95% CI]", "t-test p",
              "Wilcoxon p"]
    if paper:
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
            row = [str(early), str(late), _cell(st), _cell(sb), _diff(comparison),
                   _p(comparison.t_pvalue, comparison.t_note) if comparison else "--",
                   _p(comparison.wilcoxon_pvalue, comparison.wilcoxon_note)
                   if comparison else "--"]
            if paper:
                row.append(PAPER["early_vs_late"].get((dataset, early, late), "--"))
            rows.append(row)
    return _table(header, rows)


def _multi_metric(view: _View, dataset: str, metrics: Sequence[str], duration: int) -> str:
    header = ["metric", "untrained", *view.methods, f"{view.treatment} − {view.baseline} "
              "[95% CI]", "t-test p", "Wilcoxon p"]
    rows = []
    for metric in metrics:
        if not view.has(metric):
            continue
        comparison = view.compare(dataset, (view.treatment, duration),
                                  (view.baseline, duration), metric)
        rows.append([
            NAMES.get(metric, metric) + (" (lower is better)" if metric in LOWER_IS_BETTER
                                         else ""),
            _cell(view.floor(dataset, metric)),
            *(_cell(view.summary(dataset, m, duration, metric)) for m in view.methods),
            _diff(comparison),
            _p(comparison.t_pvalue, comparison.t_note) if comparison else "--",
            _p(comparison.wilcoxon_pvalue, comparison.wilcoxon_note) if comparison else "--",
        ])
    return _table(header, rows)


def _efficiency(view: _View, metrics: Sequence[str]) -> tuple[str, list[dict[str, Any]]]:
    """Each method's first duration reaching the other's best mean (interpolated)."""
    t, b = view.treatment, view.baseline
    header = ["dataset", "metric", "best of", "its best (epochs)", "reached by", "at epochs",
              "epochs saved", "untrained"]
    rows, facts = [], []
    for dataset in view.datasets:
        for metric in metrics:
            if not view.has(metric):
                continue
            higher = metric not in LOWER_IS_BETTER
            for leader, follower in ((b, t), (t, b)):
                d_lead, v_lead = view.mean_curve(dataset, leader, metric)
                d_follow, v_follow = view.mean_curve(dataset, follower, metric)
                if not d_lead or not d_follow:
                    continue
                pick = max if higher else min
                best = pick(v_lead)
                best_at = d_lead[v_lead.index(best)]
                reach = stats.epochs_to_reach(d_follow, v_follow, best,
                                              higher_is_better=higher)
                if reach.status == "never":
                    saved = "never reached"
                    saved_value = None
                else:
                    saved_value = (1 - reach.duration / best_at) * 100
                    saved = (f"≥ {saved_value:.0f}%" if reach.status == "first"
                             else f"{saved_value:.0f}%")
                floor = view.floor(dataset, metric)
                rows.append([dataset, metric, leader, f"{best:.4f} ({best_at})", follower,
                             reach.format(3), saved,
                             f"{floor.mean:.4f}" if floor.n else "--"])
                facts.append({"dataset": dataset, "metric": metric, "leader": leader,
                              "follower": follower, "best": best, "best_at": best_at,
                              "reach": reach, "saved": saved_value, "floor": floor,
                              "higher": higher})
    return _table(header, rows), facts


def _profile_section(view: _View) -> tuple[str, list[dict[str, Any]]]:
    from rkdo.bench.flops import StepProfile, format_table

    parts, facts = [], []
    for dataset, rows in view.results.profiles.items():
        profiles = [StepProfile(**row) for row in rows]
        if not profiles:
            continue
        first = profiles[0]
        parts.append(f"**{dataset}** ({first.encoder}, batch {first.batch_size}, "
                     f"{first.image_size} px, two views per step, {first.device}, "
                     f"{first.threads} thread(s), median of {first.timed_steps} timed steps):\n")
        parts.append(format_table(profiles, markdown=True) + "\n")
        depth = {p.label.rsplit(" ", 1)[-1]: p for p in profiles
                 if p.label.startswith(view.treatment + " depth")}
        deepest = max(depth, key=int) if depth else None
        if "1" in depth and deepest and deepest != "1":
            one, many = depth["1"], depth[deepest]
            facts.append({
                "dataset": dataset, "depth": int(deepest),
                "forward": (many.forward_flops / one.forward_flops - 1) * 100,
                "train": (many.train_flops / one.train_flops - 1) * 100,
                "time": (many.median_step_seconds / one.median_step_seconds - 1) * 100
                if one.median_step_seconds > 0 else math.nan,
                "gflops": (one.forward_gflops, many.forward_gflops),
                "encoder": first.encoder, "batch": first.batch_size,
                "image_size": first.image_size,
            })
    return "\n".join(parts), facts


def _throughput(view: _View) -> str:
    rows = []
    for dataset in view.datasets:
        for method in view.methods:
            speeds = [r.get("images_per_s") for key, r in view.results.records.items()
                      if r.get("kind") == "train" and r["dataset"] == dataset
                      and r["method"] == method and r.get("images_per_s")]
            seconds = [r["wall_seconds"] for r in view.results.records.values()
                       if r.get("kind") == "train" and r["dataset"] == dataset
                       and r["method"] == method]
            if speeds:
                summary = stats.summarize(speeds)
                rows.append([dataset, method, f"{summary.mean:.0f}",
                             f"{stats.summarize(seconds).mean:.0f}"])
    return _table(["dataset", "method", "training images/s (median per run, mean over runs)",
                   "wall seconds per run (incl. evaluations)"], rows) + (
        "\n\nWall-clock numbers, on the machine as loaded while the grid ran (other processes "
        "and parallel workers included); the per-step FLOPs above do not depend on load.")


# ----------------------------------------------------------------------------- verdicts


def _verdicts(view: _View, efficiency: list[dict[str, Any]],
              profile_facts: list[dict[str, Any]]) -> list[str]:
    t, b = view.treatment, view.baseline
    lines = []

    # 1. training loss ~30% lower
    reductions, fair = [], []
    for dataset in view.datasets:
        for duration in view.durations:
            for metric, bucket in (("train_loss", reductions), ("heldout_icon_loss", fair)):
                st = view.summary(dataset, t, duration, metric)
                sb = view.summary(dataset, b, duration, metric)
                if st.n and sb.n and sb.mean:
                    bucket.append((sb.mean - st.mean) / abs(sb.mean) * 100)
    low, high = PAPER["loss_reduction"]
    if reductions:
        mean = sum(reductions) / len(reductions)
        holds = min(reductions) > 0 and low - 5 <= mean <= high + 5
        text = (f"**Claim 1: {t}'s final training loss is ~30% lower than {b}'s (paper: "
                f"{low:.0f}-{high:.0f}%).** Ours: {min(reductions):.1f}% to "
                f"{max(reductions):.1f}% lower (mean {mean:.1f}%) over "
                f"{len(reductions)} dataset x duration cells: "
                f"**{'reproduced' if holds else 'not reproduced'}**.")
        if fair:
            fair_mean = sum(fair) / len(fair)
            direction = "lower" if fair_mean > 0 else "higher"
            text += (f" But the two losses are different functions; on the same static I-Con "
                     f"loss on held-out images {t} is {abs(fair_mean):.1f}% {direction} on "
                     f"average (range {min(fair):+.1f}% to {max(fair):+.1f}%, positive = "
                     f"{t} lower), so the training-loss gap "
                     f"{'does not carry over' if fair_mean < low / 2 else 'carries over'} to a "
                     "common yardstick.")
        lines.append(text)
    else:
        lines.append("**Claim 1 (training loss ~30% lower):** no training-loss results.")

    # 2. 60-80% fewer epochs
    for metric in ("linear_probe", view.linear_metric(), "knn_acc_20"):
        facts = [f for f in efficiency if f["metric"] == metric and f["leader"] == b]
        if facts:
            break
    if facts:
        parts, outcomes = [], []
        target = PAPER["epochs_saved"][0]
        for fact in facts:
            reach = fact["reach"]
            floor = fact["floor"]
            below_floor = floor.n and (
                (fact["best"] <= floor.mean) if fact["higher"] else (fact["best"] >= floor.mean))
            if reach.status == "never":
                parts.append(f"{fact['dataset']}: {t} never reaches {b}'s best "
                             f"{fact['best']:.4f} (at {fact['best_at']} epochs)")
                outcomes.append("not supported")
            else:
                saved = fact["saved"]
                lower_bound = reach.status == "first"
                parts.append(f"{fact['dataset']}: {t} reaches {b}'s best {fact['best']:.4f} "
                             f"(at {fact['best_at']} epochs) after {reach.format(3)} epochs, "
                             f"{'at least ' if lower_bound else ''}{saved:.0f}% fewer")
                if saved >= target:
                    outcomes.append("supported")
                elif lower_bound:
                    parts[-1] += " (shorter durations would be needed to resolve it)"
                    outcomes.append("undetermined")
                else:
                    outcomes.append("not supported")
            if below_floor:
                parts[-1] += (f" (but the untrained encoder already scores {floor.mean:.4f}: "
                              "the target is no better than no training)")
        verdict = outcomes[0] if len(set(outcomes)) == 1 else "mixed (" + ", ".join(
            f"{d['dataset']}: {o}" for d, o in zip(facts, outcomes, strict=True)) + ")"
        resolved = []
        for fact in facts:
            comparisons = [view.compare(fact["dataset"], (t, d), (b, d), metric)
                           for d in view.durations]
            comparisons = [c for c in comparisons if c is not None]
            if comparisons and not any(c.ci_excludes_zero for c in comparisons):
                resolved.append(fact["dataset"])
        noise = (f" Caveat: on {', '.join(resolved)} every same-duration {t} − {b} difference "
                 "on this metric has a 95% CI that includes 0, so the curves are not "
                 "distinguishable at this n." if resolved else "")
        lines.append(f"**Claim 2: {t} needs 60-80% fewer epochs to reach {b}'s quality.** "
                     f"On {NAMES.get(metric, metric)}: " + "; ".join(parts)
                     + f": **{verdict}**.{noise}")

    # 3. the CIFAR-10 5-epoch numbers
    duration = 5 if 5 in view.durations else None
    metric = view.linear_metric()
    if duration is None:
        lines.append(f"**Claim 3: CIFAR-10 linear eval at 5 epochs, {t} 0.3078 ± 0.037 vs {b} "
                     "0.3291 ± 0.021 (a gap within noise).** Not measured: the grid has no "
                     "5-epoch duration.")
    else:
        parts = []
        for dataset in view.datasets:
            comparison = view.compare(dataset, (t, duration), (b, duration), metric)
            if comparison is None:
                continue
            significant = comparison.ci_excludes_zero
            parts.append(
                f"{dataset}: {t} {view.summary(dataset, t, duration, metric).format()} vs {b} "
                f"{view.summary(dataset, b, duration, metric).format()}, difference "
                f"{_diff(comparison)} ({'CI excludes 0' if significant else 'CI includes 0'}"
                f", t-test p {_p(comparison.t_pvalue, comparison.t_note)})")
        where = ("" if "cifar10" in view.datasets else
                 " CIFAR-10 is not in this grid, so the paper's numbers are not re-measured; "
                 "the same comparison on our data:")
        lines.append(f"**Claim 3: CIFAR-10 linear eval at 5 epochs, {t} 0.3078 ± 0.037 vs {b} "
                     f"0.3291 ± 0.021 ({b} ahead by 0.021, within noise).**{where} "
                     + "; ".join(parts) + f" ({NAMES.get(metric, metric)}).")

    # 4. early RKDO vs later I-Con
    early, late = view.near(2), view.near(5)
    if early < late:
        sections = []
        for metric in dict.fromkeys((view.linear_metric(), "linear_probe")):
            if not view.has(metric):
                continue
            parts = []
            for dataset in view.datasets:
                comparison = view.compare(dataset, (t, early), (b, late), metric)
                if comparison is None:
                    continue
                if comparison.mean_diff >= 0:
                    outcome = "supported" + (" (CI excludes 0)" if comparison.ci_excludes_zero
                                             else " (within noise)")
                elif comparison.ci_excludes_zero:
                    outcome = "contradicted (CI below 0)"
                else:
                    outcome = "not supported (lower, within noise)"
                parts.append(f"{dataset}: {_diff(comparison)}, **{outcome}**")
            sections.append(f"on {NAMES.get(metric, metric)}: " + "; ".join(parts))
        lines.append(
            f"**Claim 4: {t} at {early} epochs matches or beats {b} at {late} (paper, STL-10: "
            f"0.2225 vs 0.2197).** {t}@{early} − {b}@{late} " + "; ".join(sections) + ".")

    # 5. FLOP overhead
    if profile_facts:
        parts = []
        for fact in profile_facts:
            parts.append(
                f"{fact['dataset']} ({fact['encoder']}, batch {fact['batch']}, "
                f"{fact['image_size']} px): depth {fact['depth']} vs 1 forward "
                f"{fact['forward']:+.4f}% FLOPs, forward+backward {fact['train']:+.4f}%, "
                f"time {fact['time']:+.1f}%")
        holds = all(f["forward"] < PAPER["flop_overhead_percent"] for f in profile_facts)
        lines.append("**Claim 5: the recursion costs < 0.03% FLOPs per step (paper: 9.5537 vs "
                     "9.5545 GFLOPs, ResNet-18, batch 64, 32 px, forward only).** "
                     + "; ".join(parts)
                     + f": **{'reproduced' if holds else 'not reproduced'}** in counted FLOPs "
                     "for this encoder. The counter (torch.utils.flop_counter) sees matrix "
                     "products and convolutions only; our RKDO computes the similarities once "
                     "for all temperatures, so its extra work is element-wise and shows in the "
                     "time, not in these FLOPs (`rkdo profile` measures the paper's ResNet-18 "
                     "setting).")
    return lines


# ----------------------------------------------------------------------------- figures


def make_figures(results: Results, directory: str | os.PathLike[str]) -> dict[str, Path]:
    """Write the report's PNG figures into ``directory``; returns ``{name: path}``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    view = _View(results)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Path] = {}
    datasets = view.datasets
    if not datasets:
        return figures
    colours = {m: plt.get_cmap("tab10")(k) for k, m in enumerate(view.methods)}
    n = len(datasets)

    def save(fig: Any, name: str) -> None:
        path = directory / f"{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=80)
        plt.close(fig)
        figures[name] = path

    def curve(ax: Any, dataset: str, method: str, metric: str, with_floor: bool) -> None:
        xs, ys, es = [], [], []
        if with_floor and view.floor(dataset, metric).n:
            floor = view.floor(dataset, metric)
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
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=method,
                        color=colours[method])

    # loss vs duration: each method's own training loss, and the common held-out loss
    loss_metrics = [m for m in ("train_loss", "heldout_icon_loss") if view.has(m)]
    if loss_metrics:
        fig, axes = plt.subplots(len(loss_metrics), n, figsize=(3.6 * n, 2.8 * len(loss_metrics)),
                                 squeeze=False)
        for row, metric in enumerate(loss_metrics):
            for col, dataset in enumerate(datasets):
                ax = axes[row][col]
                for method in view.methods:
                    curve(ax, dataset, method, metric, with_floor=metric != "train_loss")
                ax.set_title(f"{dataset}: {'training' if metric == 'train_loss' else 'held-out'}"
                             " loss", fontsize=9)
                ax.set_xlabel("epochs")
                ax.legend(fontsize=7)
        save(fig, "loss_vs_duration")

    # early T vs later B bars
    early, late = view.near(2), view.near(5)
    acc_metrics = [m for m in dict.fromkeys((view.linear_metric(), "linear_probe", "knn_acc_20"))
                   if view.has(m)]
    if early < late and acc_metrics:
        fig, axes = plt.subplots(1, len(acc_metrics), figsize=(3.6 * len(acc_metrics), 3),
                                 squeeze=False)
        for col, metric in enumerate(acc_metrics):
            ax = axes[0][col]
            width = 0.35
            for k, (method, duration) in enumerate(((view.treatment, early),
                                                    (view.baseline, late))):
                summaries = [view.summary(d, method, duration, metric) for d in datasets]
                ax.bar([i + (k - 0.5) * width for i in range(n)], [s.mean for s in summaries],
                       width, yerr=[0 if s.n < 2 else s.std for s in summaries], capsize=3,
                       label=f"{method} {duration} ep", color=colours[method])
            for i, dataset in enumerate(datasets):
                floor = view.floor(dataset, metric)
                if floor.n:
                    ax.hlines(floor.mean, i - 0.45, i + 0.45, colors="k", linestyles="--",
                              label="untrained" if i == 0 else None)
            ax.set_xticks(range(n), datasets)
            ax.set_title(metric, fontsize=9)
            ax.legend(fontsize=7)
        save(fig, "early_treatment_vs_late_baseline")

    # early learning: durations 1 and 2
    early_durations = [d for d in view.durations if d <= 2] or view.durations[:1]
    metric = acc_metrics[0] if acc_metrics else None
    if metric:
        fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3), squeeze=False)
        for col, dataset in enumerate(datasets):
            ax = axes[0][col]
            width = 0.8 / max(len(view.methods), 1)
            for k, method in enumerate(view.methods):
                summaries = [view.summary(dataset, method, d, metric) for d in early_durations]
                ax.bar([i + (k - (len(view.methods) - 1) / 2) * width
                        for i in range(len(early_durations))],
                       [s.mean for s in summaries], width,
                       yerr=[0 if s.n < 2 else s.std for s in summaries], capsize=3,
                       label=method, color=colours[method])
            floor = view.floor(dataset, metric)
            if floor.n:
                ax.axhline(floor.mean, color="k", linestyle="--", label="untrained")
            ax.set_xticks(range(len(early_durations)), [f"{d} ep" for d in early_durations])
            ax.set_title(f"{dataset}: {metric}", fontsize=9)
            ax.legend(fontsize=7)
        save(fig, "early_learning")

    # loss improvement %
    if loss_metrics:
        fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3), squeeze=False)
        for col, dataset in enumerate(datasets):
            ax = axes[0][col]
            width = 0.8 / len(loss_metrics)
            for k, metric in enumerate(loss_metrics):
                values = []
                for duration in view.durations:
                    st = view.summary(dataset, view.treatment, duration, metric)
                    sb = view.summary(dataset, view.baseline, duration, metric)
                    values.append((sb.mean - st.mean) / abs(sb.mean) * 100
                                  if st.n and sb.n and sb.mean else math.nan)
                ax.bar([i + (k - (len(loss_metrics) - 1) / 2) * width
                        for i in range(len(view.durations))], values, width,
                       label="training loss" if metric == "train_loss" else "held-out loss")
            low, high = PAPER["loss_reduction"]
            ax.axhspan(low, high, color="grey", alpha=0.25, label="paper 27-34%")
            ax.axhline(0, color="k", linewidth=0.8)
            ax.set_xticks(range(len(view.durations)), [f"{d} ep" for d in view.durations])
            ax.set_ylabel(f"{view.treatment} lower by (%)")
            ax.set_title(dataset, fontsize=9)
            ax.legend(fontsize=7)
        save(fig, "loss_improvement")

    # accuracy vs duration with error bars
    if acc_metrics:
        fig, axes = plt.subplots(len(acc_metrics), n, figsize=(3.6 * n, 2.8 * len(acc_metrics)),
                                 squeeze=False)
        for row, metric in enumerate(acc_metrics):
            for col, dataset in enumerate(datasets):
                ax = axes[row][col]
                for method in view.methods:
                    curve(ax, dataset, method, metric, with_floor=True)
                ax.set_title(f"{dataset}: {metric}", fontsize=9)
                ax.set_xlabel("epochs (0 = untrained)")
                ax.legend(fontsize=7)
        save(fig, "accuracy_vs_duration")
    return figures


# ----------------------------------------------------------------------------- the report


def build_report(results: Results, figures: dict[str, Path] | None = None,
                 base: Path | None = None) -> str:
    """The report's markdown text (figure links relative to ``base``)."""
    view = _View(results)
    grid = view.grid
    t, b = view.treatment, view.baseline
    records = results.records
    train_records = [r for r in records.values() if r.get("kind") == "train"]
    total_seconds = sum(r.get("wall_seconds", 0.0) for r in records.values())
    starts = sorted(r["started_at"] for r in records.values() if r.get("started_at"))
    ends = sorted(r["finished_at"] for r in records.values() if r.get("finished_at"))
    settings = ", ".join(f"{k}={v}" for k, v in sorted(grid.settings.items()))
    steps = grid.settings.get("steps_per_epoch")
    epoch_words = (f"an 'epoch' is {steps} batches (the paper's protocol uses 10)" if steps
                   else "an epoch is a full pass over the training split")
    versions = next(iter(records.values()), {}).get("versions", {}) if records else {}
    commands = sorted({r.get("command") for r in records.values() if r.get("command")})
    out: list[str] = []
    add = out.append
    add(f"# Benchmark report: `{grid.name}`\n")
    if grid.description:
        add(grid.description.strip() + "\n")
    add(f"- Store: `{results.out}` (grid hash `{grid.hash}`); {len(records)} of "
        f"{len(results.jobs)} jobs with results, {len(results.failed)} failed, "
        f"{len(results.skipped)} skipped.")
    add(f"- Datasets: {', '.join(view.datasets) or '--'}; methods: {', '.join(view.methods)} "
        f"(treatment `{t}`, baseline `{b}`); durations (epochs): "
        f"{', '.join(map(str, grid.durations))}; seeds: {', '.join(map(str, grid.seeds))}.")
    add(f"- Shared settings: {settings}; {epoch_words}.")
    for spec in grid.methods:
        options = ", ".join(f"{k}={v}" for k, v in spec.options.items())
        add(f"- Method `{spec.name}`: {options}" + (" (optional)" if spec.optional else ""))
    add("- **Durations reuse one run**: each (dataset, method, seed) is trained once for "
        f"{max(grid.durations)} epochs and evaluated after {', '.join(map(str, grid.durations))} "
        "epochs, instead of retraining from scratch for every duration as the paper did. With "
        "a constant learning rate and per-epoch data order drawn from (seed, epoch), the first "
        "d epochs of the long run are the d-epoch run.")
    add("- The untrained encoder (same seed, same initialisation) is the floor row "
        "(`untrained`, 0 epochs) of every accuracy table.")
    add(f"- Statistics: mean ± sample std over seeds; differences paired by seed with a 95% "
        f"percentile bootstrap CI (seeded); paired t-test (n ≥ {stats.MIN_N_TTEST}) and "
        f"Wilcoxon signed-rank test (n ≥ {stats.MIN_N_WILCOXON}; below that it cannot reach "
        "p < 0.05) — 'n too small' where a test cannot mean anything. With n = 3 a "
        "bootstrap has only 10 distinct resamples: read its CI as coarse.")
    if starts and ends:
        from datetime import datetime

        elapsed = (datetime.fromisoformat(ends[-1]) - datetime.fromisoformat(starts[0])
                   ).total_seconds()
        workers = sorted({r.get("workers", 1) for r in records.values()})
        add(f"- Compute: {total_seconds / 60:.1f} min of job time summed over jobs "
            f"({len(train_records)} training runs; a resumed job counts its last session only; "
            f"{'/'.join(map(str, workers))} worker process(es)); {elapsed / 60:.1f} min from "
            f"the first job's start ({starts[0]}) to the last job's end ({ends[-1]}).")
    for session in results.sessions:
        state = (f"finished {session['finished']} after {session['seconds'] / 60:.1f} min"
                 if "finished" in session else "interrupted")
        add(f"- Session: `{session.get('command')}` started {session['started']}, "
            f"{session.get('pending')} jobs pending, {state}.")
    if versions:
        add("- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    for command in commands:
        add(f"- Command: `{command}`")
    add("")

    efficiency_metrics = [m for m in dict.fromkeys(("linear_probe", "knn_acc_20",
                                                    view.linear_metric()))]
    efficiency_table, efficiency = _efficiency(view, efficiency_metrics)
    profile_text, profile_facts = _profile_section(view)
    add("## Verdicts on the paper's claims (from our numbers)\n")
    for line in _verdicts(view, efficiency, profile_facts):
        add(f"- {line}")
    add("")

    paper_metric = view.linear_metric()
    for dataset in view.datasets:
        add(f"## {dataset}\n")
        if view.has("train_loss"):
            add("### Table 1: final training loss (each method's own loss; mean of the last "
                "epoch's batches)\n")
            add(_loss_table(view, dataset, "train_loss", paper=True) + "\n")
        if view.has("heldout_icon_loss"):
            add("### Table 1 (fair): held-out static I-Con loss (same function for every "
                "method, lower is better)\n")
            add(_loss_table(view, dataset, "heldout_icon_loss", paper=False) + "\n")
        add(f"### Table 2: {NAMES.get(paper_metric, paper_metric)} across durations\n")
        add(_across_durations(view, dataset, paper_metric, paper=True) + "\n")
        add(f"### Table 3: early {t} vs later {b} ({NAMES.get(paper_metric, paper_metric)})\n")
        add(_early_vs_late(view, dataset, paper_metric, paper=True) + "\n")
        duration = view.near(2)
        paper_multi = [m for m in PAPER_MULTI if view.has(m)] or [
            m for m in ("linear_probe", "nmi", "ari", "neighbourhood_acc_5") if view.has(m)]
        add(f"### Table 4: every metric at {duration} epochs\n")
        add(_multi_metric(view, dataset, paper_multi, duration) + "\n")
        fair = [m for m in FAIR_METRICS if view.has(m) and m != paper_metric
                and m != "heldout_icon_loss"]
        if fair:
            add("### Fair yardsticks (full test split, train split as probe / k-NN reference)\n")
            for metric in fair:
                add(f"#### Table 2 (fair): {NAMES.get(metric, metric)}\n")
                add(_across_durations(view, dataset, metric, paper=False) + "\n")
            add(f"#### Table 3 (fair): early {t} vs later {b}, {NAMES.get(fair[0], fair[0])}\n")
            add(_early_vs_late(view, dataset, fair[0], paper=False) + "\n")
            add(f"#### Table 4 (fair): full-protocol metrics at {duration} epochs\n")
            add(_multi_metric(view, dataset, [m for m in FULL_MULTI if view.has(m)], duration)
                + "\n")

    add("## Compute efficiency: epochs to reach the other method's best\n")
    add("For each dataset and metric, the best mean over durations of one method, and the "
        "first duration at which the other method's mean curve reaches it (linear interpolation"
        " between measured durations; '≤ d' when already reached at the first duration, so the "
        "saving is a lower bound). 'epochs saved' = 1 − reach / best's duration; the paper "
        "claims 60-80% for RKDO.\n")
    add(efficiency_table + "\n")
    if profile_text:
        add("## Cost per training step (`rkdo profile`)\n")
        add("FLOPs counted by torch.utils.flop_counter (matrix products and convolutions; two "
            "views per step); time is the median of full steps (forward, backward, Adam) on "
            "random inputs. Paper: 9.5537 (depth 1) vs 9.5545 (depth 3) GFLOPs per step, "
            "forward only, ResNet-18, batch 64, 32 px.\n")
        add(profile_text)
    add("### Training throughput (from the runs' logs)\n")
    add(_throughput(view) + "\n")
    if figures:
        add("## Figures\n")
        captions = {
            "loss_vs_duration": "Loss vs training duration: each method's own training loss "
                                "(top) and the held-out static I-Con loss (bottom, 0 = "
                                "untrained)",
            "early_treatment_vs_late_baseline": f"{t} at {view.near(2)} epochs vs {b} at "
                                                f"{view.near(5)} epochs (dashed: untrained)",
            "early_learning": "Early learning: accuracy after the first durations "
                              "(dashed: untrained)",
            "loss_improvement": f"How much lower {t}'s loss is than {b}'s: training loss vs "
                                "held-out loss (grey: the paper's 27-34%)",
            "accuracy_vs_duration": "Accuracy vs training duration, mean ± std over seeds "
                                    "(0 = untrained)",
        }
        for name, path in figures.items():
            link = os.path.relpath(path, base) if base else str(path)
            add(f"![{captions.get(name, name)}]({link})\n")
            add(f"*{captions.get(name, name)}.*\n")
    if results.failed or results.skipped:
        add("## Failed and skipped jobs\n")
        for record in results.failed + results.skipped:
            add(f"- `{record['key']}` ({record['status']}): {record.get('error', '')}")
        add("")
    return "\n".join(out).rstrip() + "\n"


def write_report(out: str | os.PathLike[str], report_dir: str | os.PathLike[str] | None = None
                 ) -> Path:
    """Read the store at ``out``; write ``report.md`` and ``figures/*.png`` into ``report_dir``
    (default: ``out``). Returns the path of ``report.md``."""
    results = load_results(out)
    target = Path(report_dir) if report_dir is not None else Path(out)
    target.mkdir(parents=True, exist_ok=True)
    figures = make_figures(results, target / "figures")
    path = target / "report.md"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(build_report(results, figures, base=target))
    os.replace(tmp, path)
    return path
