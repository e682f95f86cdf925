"""Evaluation: metrics on arrays (:mod:`.metrics`), a frozen encoder's features and held-out loss
(:mod:`.frozen`), protocols that need a model (:mod:`.protocols`),
what they can do with a dataset's sizes (:mod:`.plan`) and paired statistics across seeds
(:mod:`.stats`).

:data:`PROTOCOLS`, :data:`FULL_METRICS` and :data:`PAPER_METRICS` are defined once, in
:mod:`.names` (torch-free); import them from here. The other names load their module on first
use (PEP 562, :mod:`rkdo._lazy`), so that reading the names loads no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rkdo._lazy import lazy_face
from rkdo.evaluation.names import FULL_METRICS, PAPER_METRICS, PROTOCOLS

if TYPE_CHECKING:
    from rkdo.evaluation.frozen import extract_features, heldout_icon_loss
    from rkdo.evaluation.metrics import (
        cluster_accuracy,
        kmeans_metrics,
        knn_accuracies,
        knn_accuracy,
        linear_probe,
        neighbourhood_accuracy,
    )
    from rkdo.evaluation.plan import EvalPlan, plan_evaluation
    from rkdo.evaluation.protocols import evaluate, paper_protocol

__all__ = [
    "EvalPlan",
    "FULL_METRICS",
    "PAPER_METRICS",
    "PROTOCOLS",
    "cluster_accuracy",
    "evaluate",
    "extract_features",
    "heldout_icon_loss",
    "kmeans_metrics",
    "knn_accuracies",
    "knn_accuracy",
    "linear_probe",
    "neighbourhood_accuracy",
    "paper_protocol",
    "plan_evaluation",
]

_HOMES = {
    **dict.fromkeys(("extract_features", "heldout_icon_loss"), "rkdo.evaluation.frozen"),
    **dict.fromkeys(("cluster_accuracy", "kmeans_metrics", "knn_accuracies", "knn_accuracy",
                     "linear_probe", "neighbourhood_accuracy"), "rkdo.evaluation.metrics"),
    **dict.fromkeys(("EvalPlan", "plan_evaluation"), "rkdo.evaluation.plan"),
    **dict.fromkeys(("evaluate", "paper_protocol"), "rkdo.evaluation.protocols"),
}
lazy_face(__name__, _HOMES)
