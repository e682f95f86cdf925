"""The report's assembly: ``report.md`` from a store, in this order.

1. how the grid was run (store, settings, statistics, compute, sessions, versions);
2. a verdict for each of the paper's claims, from our numbers only (:mod:`.claims`);
3. per dataset, Table 1 (final training loss, then the held-out static I-Con loss), Table 2
   (linear evaluation across durations, the untrained encoder as a floor row), Table 3 (early
   treatment vs later baseline), Table 4 (every metric at ~2 epochs), and the same tables on the
   fair yardsticks (full test split: linear probe, k-NN, held-out loss) (:mod:`.tables`);
4. compute efficiency (epochs to reach the other method's best), FLOPs and time per step;
5. the figures (:mod:`.figures`) and the failed or skipped jobs.

Published values appear only where the paper gives them (:mod:`rkdo.bench.paper`).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

from rkdo._io import write_text_atomic
from rkdo.bench import paper
from rkdo.bench.report import tables
from rkdo.bench.report.claims import verdicts
from rkdo.bench.report.figures import make_figures
from rkdo.bench.report.view import FAIR_METRICS, FULL_MULTI, NAMES, PAPER_MULTI, View
from rkdo.bench.store import Results, load_results
from rkdo.evaluation import stats

__all__ = ["build_report", "write_report"]


def _compute_line(records: dict[str, dict[str, Any]]) -> str | None:
    starts = sorted(r["started_at"] for r in records.values() if r.get("started_at"))
    ends = sorted(r["finished_at"] for r in records.values() if r.get("finished_at"))
    if not (starts and ends):
        return None
    total_seconds = sum(r.get("wall_seconds", 0.0) for r in records.values())
    train_runs = sum(1 for r in records.values() if r.get("kind") == "train")
    elapsed = (datetime.fromisoformat(ends[-1]) - datetime.fromisoformat(starts[0])
               ).total_seconds()
    workers = sorted({r.get("workers", 1) for r in records.values()})
    return (f"- Compute: {total_seconds / 60:.1f} min of job time summed over jobs "
            f"({train_runs} training runs; a resumed job counts its last session only; "
            f"{'/'.join(map(str, workers))} worker process(es)); {elapsed / 60:.1f} min from "
            f"the first job's start ({starts[0]}) to the last job's end ({ends[-1]}).")


def _how_it_ran(view: View, results: Results) -> list[str]:
    grid, records = view.grid, results.records
    steps = grid.settings.get("steps_per_epoch")
    epoch_words = (f"an 'epoch' is {steps} batches (the paper's protocol uses 10)" if steps
                   else "an epoch is a full pass over the training split")
    lines = [f"# Benchmark report: `{grid.name}`\n"]
    if grid.description:
        lines.append(grid.description.strip() + "\n")
    lines += [
        f"- Store: `{results.out}` (grid hash `{grid.hash}`); {len(records)} of "
        f"{len(results.jobs)} jobs with results, {len(results.failed)} failed, "
        f"{len(results.skipped)} skipped.",
        *_missing(results),
        f"- Datasets: {', '.join(view.datasets) or '--'}; methods: {', '.join(view.methods)} "
        f"(treatment `{view.treatment}`, baseline `{view.baseline}`); durations (epochs): "
        f"{', '.join(map(str, grid.durations))}; seeds: {', '.join(map(str, grid.seeds))}.",
        f"- Shared settings: {', '.join(f'{k}={v}' for k, v in sorted(grid.settings.items()))}"
        f"; {epoch_words}.",
    ]
    for spec in grid.methods:
        options = ", ".join(f"{k}={v}" for k, v in spec.options.items())
        lines.append(f"- Method `{spec.name}`: {options}" + (" (optional)" if spec.optional
                                                              else ""))
    lines.append(
        "- **Durations reuse one run**: each (dataset, method, seed) is trained once for "
        f"{max(grid.durations)} epochs and evaluated after {', '.join(map(str, grid.durations))} "
        "epochs, instead of retraining from scratch for every duration as the paper did. With "
        "a constant learning rate and per-epoch data order drawn from (seed, epoch), the first "
        "d epochs of the long run are the d-epoch run.")
    lines.append("- Two floor rows (0 epochs) in every accuracy table: `untrained`, the untrained "
                 "encoder (same seed, same initialisation), and `raw-pixels`, the flattened "
                 "images themselves as features under the same protocol.")
    lines.append(
        f"- Statistics: mean ± sample std over seeds; differences paired by seed with a 95% "
        f"percentile bootstrap CI (seeded); paired t-test (n ≥ {stats.MIN_N_TTEST}) and "
        f"Wilcoxon signed-rank test (n ≥ {stats.MIN_N_WILCOXON}; below that it cannot reach "
        "p < 0.05) — 'n too small' where a test cannot mean anything."
        + (" With n = 3 a bootstrap has only 10 distinct resamples: read its CI as coarse."
           if len(grid.seeds) <= 3 else ""))
    return lines + _provenance(results)


def _missing(results: Results) -> list[str]:
    """A line naming the jobs without a result (a grid still running, or stopped)."""
    done = set(results.records) | {r["key"] for r in results.failed + results.skipped}
    missing = [job.key for job in results.jobs if job.key not in done]
    if not missing:
        return []
    shown = ", ".join(f"`{key}`" for key in missing[:10])
    more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
    return [f"- **Incomplete store: {len(missing)} of {len(results.jobs)} jobs have no result "
            f"yet** (the grid is still running or was stopped, their settings changed, or they "
            f"joined the plan after the store was made): "
            f"{shown}{more}. Tables, verdicts and figures use only what exists; rerun "
            f"`rkdo bench` with this grid and `--out {results.out}` to complete the store."]


def _provenance(results: Results) -> list[str]:
    records = results.records
    lines = [line for line in [_compute_line(records)] if line]
    for session in results.sessions:
        state = (f"finished {session['finished']} after {session.get('seconds', 0) / 60:.1f} "
                 "min" if "finished" in session else "interrupted or still running")
        lines.append(f"- Session: `{session.get('command')}` started {session.get('started')}, "
                     f"{session.get('pending')} jobs pending, {state}.")
    versions = next(iter(records.values()), {}).get("versions", {}) if records else {}
    if versions:
        lines.append("- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    commands = sorted({r.get("command") for r in records.values() if r.get("command")})
    lines += [f"- Command: `{command}`" for command in commands]
    return lines + [""]


def _dataset_section(view: View, dataset: str) -> list[str]:
    t, b = view.treatment, view.baseline
    metric = view.linear_metric()
    name = NAMES.get(metric, metric)
    lines = [f"## {dataset}\n"]
    if view.has("train_loss"):
        lines += ["### Table 1: final training loss (each method's own loss; mean of the last "
                  "epoch's batches)\n",
                  tables.loss_table(view, dataset, "train_loss", with_paper=True) + "\n"]
    if view.has("heldout_icon_loss"):
        lines += ["### Table 1 (fair): held-out static I-Con loss (same function for every "
                  "method, lower is better)\n",
                  tables.loss_table(view, dataset, "heldout_icon_loss", with_paper=False) + "\n"]
    duration = view.near(2)
    paper_multi = [m for m in PAPER_MULTI if view.has(m)] or [
        m for m in ("linear_probe", "nmi", "ari", "neighbourhood_acc_5") if view.has(m)]
    lines += [f"### Table 2: {name} across durations\n",
              tables.across_durations(view, dataset, metric, with_paper=True) + "\n",
              f"### Table 3: early {t} vs later {b} ({name})\n",
              tables.early_vs_late(view, dataset, metric, with_paper=True) + "\n",
              f"### Table 4: every metric at {duration} epochs\n",
              tables.multi_metric(view, dataset, paper_multi, duration) + "\n"]
    return lines + _fair_section(view, dataset, metric, duration)


def _fair_section(view: View, dataset: str, paper_metric: str, duration: int) -> list[str]:
    fair = [m for m in FAIR_METRICS if view.has(m) and m != paper_metric
            and m != "heldout_icon_loss"]
    if not fair:
        return []
    lines = ["### Fair yardsticks (full test split, train split as probe / k-NN reference)\n"]
    for metric in fair:
        lines += [f"#### Table 2 (fair): {NAMES.get(metric, metric)}\n",
                  tables.across_durations(view, dataset, metric, with_paper=False) + "\n"]
    lines += [f"#### Table 3 (fair): early {view.treatment} vs later {view.baseline}, "
              f"{NAMES.get(fair[0], fair[0])}\n",
              tables.early_vs_late(view, dataset, fair[0], with_paper=False) + "\n",
              f"#### Table 4 (fair): full-protocol metrics at {duration} epochs\n",
              tables.multi_metric(view, dataset, [m for m in FULL_MULTI if view.has(m)],
                                  duration) + "\n"]
    return lines


def _cost_section(view: View, efficiency_table: str, profile_text: str) -> list[str]:
    lines = [
        "## Compute efficiency: epochs to reach the other method's best\n",
        "For each dataset and metric, the best mean over durations of one method, and the "
        "first duration at which the other method's mean curve reaches it (linear interpolation"
        " between measured durations; '≤ d' when already reached at the first duration, so the "
        "saving is a lower bound). 'epochs saved' = 1 − reach / best's duration; the paper "
        f"claims {paper.percent_range(paper.EPOCHS_SAVED_PERCENT)} for RKDO.\n",
        efficiency_table + "\n",
    ]
    if profile_text:
        lines += [
            "## Cost per training step (`rkdo profile`)\n",
            "FLOPs counted by torch.utils.flop_counter (matrix products and convolutions; two "
            "views per step); time is the median [fastest, slowest] of full steps (forward, "
            "backward, Adam) on random inputs, with the 1-minute load average; a time ratio "
            "within the spread is no difference. Paper: "
            f"{paper.gflops_text()} GFLOPs per step, forward only, {paper.PROFILE_SETTING}.\n",
            profile_text,
        ]
    return lines + ["### Training throughput (from the runs' logs)\n",
                    tables.throughput(view) + "\n"]


def _captions(view: View) -> dict[str, str]:
    t, b = view.treatment, view.baseline
    ci = "points: mean over seeds with its 95% t confidence interval"
    return {
        "loss_vs_duration": "Loss vs training duration: each method's own training loss (left) "
                            f"and the held-out static I-Con loss (right, 0 = untrained); {ci}",
        "early_treatment_vs_late_baseline": f"{t} at {view.near(2)} epochs vs {b} at "
                                            f"{view.near(5)} epochs; {ci} (dashed: untrained, "
                                            "dotted: raw pixels, where on scale)",
        "early_learning": f"Early learning: accuracy after the first durations; {ci} "
                          "(dashed: untrained, dotted: raw pixels, where on scale)",
        "loss_improvement": f"How much lower {t}'s loss is than {b}'s, per seed then averaged: "
                            "training loss vs held-out loss (grey band: the paper's "
                            f"{paper.percent_range(paper.LOSS_REDUCTION_PERCENT)}); {ci}",
        "accuracy_vs_duration": f"Accuracy vs training duration (0 = untrained); {ci} "
                                "(dotted: raw pixels, where on scale)",
    }


def _figures_section(view: View, figures: dict[str, Path], base: Path | None) -> list[str]:
    captions = _captions(view)
    lines = ["## Figures\n"]
    for name, path in figures.items():
        link = os.path.relpath(path, base) if base else str(path)
        lines += [f"![{captions.get(name, name)}]({link})\n", f"*{captions.get(name, name)}.*\n"]
    return lines


def build_report(results: Results, figures: dict[str, Path] | None = None,
                 base: Path | None = None) -> str:
    """The report's markdown text (figure links relative to ``base``)."""
    view = View(results)
    lines = _how_it_ran(view, results)
    efficiency_table, efficiency = tables.efficiency(
        view, list(dict.fromkeys(("linear_probe", "knn_acc_20", view.linear_metric()))))
    profile_text, profile_facts = tables.profile_section(view)
    lines.append("## Verdicts on the paper's claims (from our numbers)\n")
    lines += [f"- {line}" for line in verdicts(view, efficiency, profile_facts)]
    lines.append("")
    for dataset in view.datasets:
        lines += _dataset_section(view, dataset)
    lines += _cost_section(view, efficiency_table, profile_text)
    if figures:
        lines += _figures_section(view, figures, base)
    if results.failed or results.skipped:
        lines.append("## Failed and skipped jobs\n")
        lines += [f"- `{record['key']}` ({record['status']}): {record.get('error', '')}"
                  for record in results.failed + results.skipped]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_report(out: str | os.PathLike[str], report_dir: str | os.PathLike[str] | None = None
                 ) -> Path:
    """Read the store at ``out``; write ``report.md`` and ``figures/*.png`` into ``report_dir``
    (default: ``out``). Returns the path of ``report.md``."""
    results = load_results(out)
    target = Path(report_dir) if report_dir is not None else Path(out)
    target.mkdir(parents=True, exist_ok=True)
    figures = make_figures(results, target / "figures")
    return write_text_atomic(target / "report.md", build_report(results, figures, base=target))
