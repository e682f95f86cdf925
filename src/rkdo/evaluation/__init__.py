"""Evaluation: metrics on arrays (:mod:`.metrics`), protocols that need a model (:mod:`.protocols`)
and paired statistics across seeds (:mod:`.stats`)."""

from rkdo.evaluation.protocols import (
    FULL_METRICS,
    PAPER_METRICS,
    PROTOCOLS,
    evaluate,
    extract_features,
)

__all__ = ["FULL_METRICS", "PAPER_METRICS", "PROTOCOLS", "evaluate", "extract_features"]
