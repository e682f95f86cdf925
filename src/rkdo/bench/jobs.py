"""What one job does, wherever it runs: train (or resume) a run, evaluate a floor, profile.

:func:`execute` is the function an executor calls, in this process or a worker: it never raises
for a failing cell and returns the job's outcome, the part of its record that running it
produced::

    {"status": "ok" | "error" | "skipped", "started_at", "finished_at", "wall_seconds",
     "threads", "host", "device", "durations": {"<epochs>": metrics} | "profile": [rows], ...}

A training job holds its run directory's lease (:mod:`rkdo.bench.lease`) while it runs and is
refused if a live job owns it. A run directory that holds the same settings is resumed from its
checkpoint (or only collected, when training had finished and only the store write was lost).
"""

from __future__ import annotations

import socket
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from rkdo import distributed
from rkdo._io import read_json, read_jsonl
from rkdo.bench.flops import profile
from rkdo.bench.lease import LeaseHeldError, lease
from rkdo.bench.plan import Job
from rkdo.bench.store import RUNS_DIR, now, same_settings
from rkdo.training import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    EVAL_FILE,
    METRICS_FILE,
    evaluate_initial,
    evaluate_pixels,
    train,
)
from rkdo.vision import data as data_module

__all__ = ["execute", "collect_run", "cell_dir"]


def _metric_items(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("kind", "epoch", "step")}


def collect_run(run_dir: Path, durations: Sequence[int]) -> dict[str, Any]:
    """Per-duration metrics of a finished run from its ``metrics.jsonl`` and ``eval.json``."""
    evals: dict[int, dict[str, Any]] = {}
    epoch_loss: dict[int, float] = {}
    speeds = []
    for entry in read_jsonl(run_dir / METRICS_FILE):
        kind = entry.get("kind")
        if kind == "eval":
            evals[int(entry["epoch"])] = _metric_items(entry)
        elif kind == "epoch":
            epoch_loss[int(entry["epoch"])] = float(entry["mean_loss"])
        elif "images_per_s" in entry:
            speeds.append(float(entry["images_per_s"]))
    final = read_json(run_dir / EVAL_FILE)
    evals[int(final["epoch"])] = _metric_items(final)
    result: dict[str, Any] = {}
    for duration in durations:
        if duration not in evals:
            raise RuntimeError(f"{run_dir} has no evaluation after epoch {duration}")
        result[str(duration)] = {**evals[duration], "train_loss": epoch_loss.get(duration)}
    speeds.sort()
    return {"durations": result,
            "images_per_s": speeds[len(speeds) // 2] if speeds else None}


def cell_dir(job: Job, out: Path) -> Path:
    """The run directory of ``job`` in the store ``out``; refused (``ValueError``) if it
    resolves outside the store's ``runs/`` (a symbolic link to a user's own run)."""
    runs = out / RUNS_DIR
    run_dir = runs / job.slug
    if not run_dir.resolve().is_relative_to(runs.resolve()):
        raise ValueError(
            f"{run_dir} resolves to {run_dir.resolve()}, outside the store; rkdo will not "
            f"train there: remove the link (`rm {run_dir}`) and rerun")
    return run_dir


def _run_train(job: Job, out: Path) -> dict[str, Any]:
    run_dir = cell_dir(job, out)
    with lease(run_dir):
        return _train_owned(job, out, run_dir)


def _train_owned(job: Job, out: Path, run_dir: Path) -> dict[str, Any]:
    config = job.train_config
    saved = run_dir / CONFIG_FILE
    same = saved.exists() and same_settings(job, read_json(saved))
    resumed = False
    if same and (run_dir / EVAL_FILE).exists():
        resumed = True  # training had finished; only the store write was lost
    elif same and (run_dir / CHECKPOINT_FILE).exists():
        train(config, run_dir, resume=True, progress=False)
        resumed = True
    else:
        train(config, run_dir, overwrite=True, progress=False)
    return {**collect_run(run_dir, job.durations), "resumed": resumed,
            "run_dir": str(run_dir.relative_to(out))}


def _device_used(name: str) -> str:
    """The device a job runs on, as recorded: ``cpu`` or ``cuda:N (GPU name)``."""
    try:
        device = distributed.resolve_device(str(name))
    except ValueError:
        return str(name)  # the job itself reports the bad device
    if device.type == "cuda":
        index = torch.cuda.current_device() if device.index is None else device.index
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return str(device)


def _run_floor(job: Job) -> dict[str, Any]:
    config = job.train_config
    evaluate_floor = evaluate_pixels if job.kind == "pixels" else evaluate_initial
    return {"durations": {"0": evaluate_floor(config, device=config.device)}}


def _run_profile(job: Job) -> dict[str, Any]:
    config, cell = job.config, job.train_config
    data = data_module.load(cell.dataset, cell.data_root, cell.download,
                             holdout_fraction=cell.holdout_fraction)
    rows = profile(
        cell.encoder, cell.batch_size, cell.resolved_image_size(), data.channels,
        variants=[(label, dict(options)) for label, options in config["variants"]],
        embedding_dim=cell.embedding_dim, hidden_dim=cell.hidden_dim,
        steps=config["steps"], warmup=min(2, config["steps"]),
        device=str(distributed.resolve_device(cell.device)),
    )
    return {"profile": [row.to_dict() for row in rows]}


def _run(job: Job, out: Path) -> dict[str, Any]:
    if job.kind == "train":
        return _run_train(job, out)
    if job.kind in ("floor", "pixels"):
        return _run_floor(job)
    return _run_profile(job)


def execute(job: Job, out: Path) -> dict[str, Any]:
    """Run one job and return its outcome; never raises for a failing cell."""
    outcome: dict[str, Any] = {"started_at": now(), "threads": torch.get_num_threads(),
                               "host": socket.gethostname(),
                               "device": _device_used(job.config.get("device", "auto"))}
    start = time.perf_counter()
    if job.skip_reason:
        outcome.update(status="skipped", error=job.skip_reason)
    else:
        try:
            outcome.update(_run(job, out), status="ok")
        except LeaseHeldError as error:  # another live job trains this cell: not a failure
            outcome.update(status="error", error=f"{type(error).__name__}: {error}", busy=True)
        except Exception as error:  # a failing cell must not stop the grid
            outcome.update(status="error", error=f"{type(error).__name__}: {error}",
                           traceback=traceback.format_exc())
    outcome["wall_seconds"] = time.perf_counter() - start
    outcome["finished_at"] = now()
    return outcome
