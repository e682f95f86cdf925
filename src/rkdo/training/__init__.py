"""Training: the run configuration (:mod:`.config`, declarations only), its checks
(:mod:`.checks`), how each loss is called on a batch (:mod:`.loss_call`), what a config builds
(:mod:`.components`), the run directory (:mod:`.rundir`), the field recorder (:mod:`.recorder`)
the loop (:mod:`.loop`: checkpointed, resumable, torchrun-ready) and :func:`train`
(:mod:`.trainer`), which sets a run up and runs the loop.

The names below load their module on first use (PEP 562, :mod:`rkdo._lazy`): reading the
config's declarations (``rkdo train --help``) loads no torch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rkdo._lazy import lazy_face

if TYPE_CHECKING:
    from rkdo.fields import FIELDS_FILE
    from rkdo.training.checks import validate
    from rkdo.training.components import evaluate_initial, evaluate_pixels
    from rkdo.training.config import (
        EXECUTION_FIELDS,
        GROUPS,
        LOSS_FIELDS,
        TrainConfig,
        config_identity,
    )
    from rkdo.training.interrupt import Interrupted
    from rkdo.training.loop import TrainingError
    from rkdo.training.loss_call import LossCall, build_loss
    from rkdo.training.rundir import (
        CHECKPOINT_FILE,
        CONFIG_FILE,
        EVAL_FILE,
        METRICS_FILE,
        Run,
        RunExistsError,
        load_run,
        read_config,
        run_is_complete,
    )
    from rkdo.training.trainer import train

__all__ = [
    "CHECKPOINT_FILE", "CONFIG_FILE", "EVAL_FILE", "FIELDS_FILE", "METRICS_FILE",
    "EXECUTION_FIELDS", "GROUPS", "Interrupted", "LOSS_FIELDS", "LossCall", "Run",
    "RunExistsError", "TrainConfig", "TrainingError", "build_loss", "config_identity",
    "evaluate_initial", "evaluate_pixels", "load_run", "read_config", "run_is_complete", "train",
    "validate",
]

_HOMES = {
    "FIELDS_FILE": "rkdo.fields",
    "validate": "rkdo.training.checks",
    **dict.fromkeys(("evaluate_initial", "evaluate_pixels"), "rkdo.training.components"),
    **dict.fromkeys(("EXECUTION_FIELDS", "GROUPS", "LOSS_FIELDS", "TrainConfig",
                     "config_identity"), "rkdo.training.config"),
    "Interrupted": "rkdo.training.interrupt",
    "TrainingError": "rkdo.training.loop",
    **dict.fromkeys(("LossCall", "build_loss"), "rkdo.training.loss_call"),
    **dict.fromkeys(("CHECKPOINT_FILE", "CONFIG_FILE", "EVAL_FILE", "METRICS_FILE", "Run",
                     "RunExistsError", "load_run", "read_config", "run_is_complete"),
                    "rkdo.training.rundir"),
    "train": "rkdo.training.trainer",
}
lazy_face(__name__, _HOMES)
