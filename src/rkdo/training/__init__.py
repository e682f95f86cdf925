"""Training: the run configuration, how each loss is called on a batch, the run directory,
the field recorder and the loop (checkpointed, resumable, torchrun-ready)."""

from rkdo.training.loop import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    EXECUTION_FIELDS,
    LOSS_FIELDS,
    EVAL_FILE,
    FIELDS_FILE,
    METRICS_FILE,
    RunExistsError,
    TrainConfig,
    TrainingError,
    build_loss,
    config_identity,
    evaluate_initial,
    load_run,
    train,
    validate,
)

__all__ = [
    "CHECKPOINT_FILE", "CONFIG_FILE", "EVAL_FILE", "FIELDS_FILE", "METRICS_FILE",
    "EXECUTION_FIELDS", "LOSS_FIELDS", "config_identity", "RunExistsError", "TrainConfig", "TrainingError", "build_loss", "evaluate_initial",
    "load_run", "train", "validate",
]
