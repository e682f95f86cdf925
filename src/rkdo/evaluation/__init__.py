"""Evaluation: metrics on arrays (:mod:`.metrics`), a frozen encoder's features and held-out loss
(:mod:`.frozen`), protocols that need a model (:mod:`.protocols`),
what they can do with a dataset's sizes (:mod:`.plan`) and paired statistics across seeds
(:mod:`.stats`).

:data:`PROTOCOLS`, :data:`FULL_METRICS` and :data:`PAPER_METRICS` are defined once, in
:mod:`.protocols`; import them from here.
"""

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
from rkdo.evaluation.protocols import (
    FULL_METRICS,
    PAPER_METRICS,
    PROTOCOLS,
    evaluate,
    paper_protocol,
)

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
