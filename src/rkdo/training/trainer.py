"""``train``: one call from settings (or a run directory) to a trained, evaluated run.

Before the first step, in this order: join the process group ``torchrun`` describes; lock the
run directory; with ``resume``, read its saved config and apply the allowed changes; refuse ranks
started with different settings; check the settings once
(:func:`~rkdo.training.checks.check_settings`, which also resolves the device); then
:class:`~rkdo.training.loop.TrainingLoop` builds the run's components (the loss once) and trains.
SIGINT / SIGTERM before or between steps stop with a checkpoint where one exists.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch.distributed as dist

from rkdo import distributed
from rkdo._io import read_json
from rkdo._validation import check_positive
from rkdo.training.checks import check_settings
from rkdo.training.config import TrainConfig
from rkdo.training.interrupt import Interrupted, StopNow, StopSignals
from rkdo.training.loop import TrainingLoop
from rkdo.training.rundir import EVAL_FILE, RunLock, resumed_config, save_config, stopped_message

__all__ = ["train"]


def train(
    config: TrainConfig | None,
    out: str | os.PathLike[str],
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    changes: dict[str, Any] | None = None,
    checkpoint_minutes: float = 5.0,
    adapt_batch_size: bool = False,
) -> dict[str, Any]:
    """Train (or resume) a run in ``out`` and return its final evaluation.

    Args:
        config: the run's settings (ignored when resuming: the saved ``config.json`` is used).
        out: run directory: ``config.json``, ``metrics.jsonl``, ``checkpoint.pt``, ``eval.json``.
        resume: continue the run saved in ``out`` from its last checkpoint; a finished run
            returns its saved evaluation.
        overwrite: allow replacing a different or finished run in ``out``.
        progress: show a progress bar (rank 0 only).
        stop_after: stop (with a checkpoint) after this many steps in total, as an interruption
            would; used to test resume.
        changes: with ``resume``, settings to change (:data:`~rkdo.training.rundir.
            RESUME_CHANGES`: more ``epochs``, execution fields); others are refused by name.
        checkpoint_minutes: also write a checkpoint when this much time has passed since the
            last one (0: only every ``checkpoint_every`` steps, at evaluations and at the end).
        adapt_batch_size: a new run whose ``batch_size`` is larger than its training split
            trains on the whole split a step instead of being refused, and ``config.json``
            records the size used (the command line sets it when the size was not typed).

    Under ``torchrun`` every rank compares its settings with the others' first and refuses a
    difference in one line naming the fields.

    SIGINT and SIGTERM stop the run after the current step with a checkpoint, raising
    :class:`Interrupted` (a ``KeyboardInterrupt``); the directory is locked while it trains.
    """
    out = Path(out)
    check_positive("checkpoint-minutes", checkpoint_minutes, allow_zero=True)
    owns_group = distributed.join_process_group(config.device if config is not None else "auto")
    lock = RunLock(out)
    try:
        with StopSignals() as signals:
            try:
                config = _settings(config, out, lock, resume, changes)
                if config is None:
                    return read_json(out / EVAL_FILE)
                device = check_settings(config)  # the one check of the settings
                if resume and changes and distributed.rank() == 0:
                    save_config(out, config)  # the changes a resumed run may make, checked
                loop = TrainingLoop(config, device, out, resume=resume, overwrite=overwrite,
                                    progress=progress, lock=lock, signals=signals,
                                    adapt_batch_size=adapt_batch_size)
                return loop.run(stop_after, checkpoint_minutes * 60.0)
            except StopNow as stop:
                raise Interrupted(stop.signum, stopped_message(out, stop.signum)) from None
    finally:
        lock.release()
        if owns_group:
            dist.destroy_process_group()


def _settings(config: TrainConfig | None, out: Path, lock: RunLock, resume: bool,
              changes: dict[str, Any] | None) -> TrainConfig | None:
    """The run's settings (a resumed run's with the allowed ``changes``), the same on every
    rank; ``None`` for a resumed run that has finished."""
    if resume:
        config = resumed_config(out, lock, changes)
        if config is None:
            return None
    elif config is None:
        raise ValueError("give a TrainConfig for a new run, or resume=True")
    distributed.check_same_on_every_rank(
        {"out": str(out.resolve()), "resume": resume, **asdict(config)})
    return config
