"""The report's data view: per-seed values of a store's rows, and paired comparisons.

For a store with treatment ``T`` and baseline ``B`` paired by seed ``s``, a comparison of two
cells ``a = (method, duration)`` and ``b`` on one metric is

    diff = mean_s (a_s - b_s),   95% bootstrap CI of diff,   paired t-test,   Wilcoxon test

(:func:`rkdo.evaluation.stats.paired_comparison`), over the seeds both cells have. Non-finite
values are dropped. Also here: the metric vocabulary (display names, which are lower-better).
"""

from __future__ import annotations

import math
from typing import Any

from rkdo.bench.grid import FLOOR, PIXELS
from rkdo.bench.store import Results
from rkdo.evaluation import FULL_METRICS, PAPER_METRICS, stats

__all__ = ["View", "NAMES", "LOWER_IS_BETTER", "FAIR_METRICS", "FULL_MULTI", "PAPER_MULTI"]

LOWER_IS_BETTER = ("train_loss", "heldout_icon_loss")
FAIR_METRICS = ("linear_probe", "knn_acc_20", "knn_acc_200", "heldout_icon_loss")
"""The full-protocol metrics that compare methods on the same yardstick."""
FULL_MULTI = ("linear_probe", "knn_acc_20",
              *(m for m in FULL_METRICS if m not in ("linear_probe", "knn_acc_20")))
"""The full protocol's metrics in the report's row order (the 20-NN yardstick first)."""
PAPER_MULTI = PAPER_METRICS
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


class View:
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

    def floor(self, dataset: str, metric: str, name: str = FLOOR) -> stats.Summary:
        """A floor row: the untrained encoder (``FLOOR``) or the raw pixels (``PIXELS``)."""
        return self.summary(dataset, name, 0, metric)

    def pixels(self, dataset: str, metric: str) -> stats.Summary:
        return self.floor(dataset, metric, PIXELS)

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

    def role(self, method: str) -> str | None:
        """``"treatment"``, ``"baseline"`` or None: the key of the paper's numbers."""
        if method == self.treatment:
            return "treatment"
        if method == self.baseline:
            return "baseline"
        return None
