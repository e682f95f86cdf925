"""The run directory: its files, the checkpoint, the metrics log, and loading a run back.

    DIR/config.json      the TrainConfig, one key per field (JSON, sorted keys)
    DIR/metrics.jsonl    one JSON record a line: train lines {step, epoch, loss, lr, images_per_s},
                         {kind: "epoch", step, epoch, mean_loss}, {kind: "eval", epoch, step, ...}
    DIR/checkpoint.pt    torch.save of {model, loss, optimizer, scheduler, rng: {augment, torch},
                         step, evals_done, epoch_loss, epoch_steps}
    DIR/eval.json        the final evaluation {epoch, step, metric: value, ...}
    DIR/fields.npz       recorded teacher/student fields (:mod:`rkdo.fields`)
    DIR/tensorboard/     TensorBoard events (``--tensorboard``)
    DIR/metrics.csv      metrics.jsonl as a table (``--csv``)
    DIR/wandb/           Weights & Biases offline run (``--wandb``)
    DIR/.lock            held (flock) by the one process training in DIR; holds its pid

Every file is replaced atomically with fsync (:mod:`rkdo._io`), so an interrupted run leaves the
last good checkpoint; on resume the metrics written after it are dropped and redone. The lock
is the kernel's: a process that dies drops it, so a dead run never blocks its directory.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rkdo import distributed
from rkdo._io import (
    LOCK_FILE,
    ExclusiveLock,
    append_jsonl,
    read_json,
    read_jsonl,
    write_json_atomic,
    write_jsonl_atomic,
    write_text_atomic,
)
from rkdo.fields import FIELDS_FILE
from rkdo.training.checkpoint import first_nonfinite, load_state, load_weights, save_state
from rkdo.training.components import Components
from rkdo.training.config import EXECUTION_FIELDS, TrainConfig
from rkdo.training.interrupt import signal_name

__all__ = [
    "CONFIG_FILE", "METRICS_FILE", "EVAL_FILE", "CHECKPOINT_FILE",
    "TENSORBOARD_DIR", "RunExistsError", "RunLock", "Run", "check_out_dir",
    "check_writable",
    "start_run", "save_config", "read_config", "load_config", "save_checkpoint", "load_checkpoint",
    "truncate_metrics", "run_is_complete", "RESUME_CHANGES", "resume_config", "resumed_config",
    "stopped_message", "MetricsLog",
    "write_metrics_csv", "load_run",
]

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
EVAL_FILE = "eval.json"
CHECKPOINT_FILE = "checkpoint.pt"
TENSORBOARD_DIR = "tensorboard"


class RunExistsError(ValueError):
    """The output directory already holds a run that this command would overwrite."""


def check_out_dir(out: Path, config: TrainConfig, overwrite: bool) -> None:
    """Refuse to start a new run in ``out`` if that would overwrite another one by accident,
    or if ``out`` cannot hold one (a file, not writable)."""
    check_writable(out)
    config_path = out / CONFIG_FILE
    if not config_path.exists():
        others = [p for p in out.iterdir() if p.name != LOCK_FILE] if out.exists() else []
        if others and not overwrite:
            raise RunExistsError(
                f"{out} exists and is not empty; choose another --out or pass --overwrite"
            )
        return
    if overwrite:
        return
    previous, current = read_json(config_path), asdict(config)
    if previous == current:
        hint = (f"continue it with `rkdo train --resume {out}`"
                if (out / CHECKPOINT_FILE).exists() else "")
        raise RunExistsError(
            f"{out} already holds this run; {hint or 'choose another --out'} "
            "or pass --overwrite to start again"
        )
    changed = sorted(k for k in current if previous.get(k) != current[k])
    raise RunExistsError(
        f"{out} holds a different run (differs in: {', '.join(changed)}); choose another --out "
        "or pass --overwrite"
    )


def check_writable(out: Path) -> None:
    """Refuse an ``out`` that names a file, lies under one, or cannot be written."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a directory; choose a directory")
    existing = next(p for p in (out, *out.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"--out {out} lies under {existing}, which is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out}: {existing} is not writable (permission denied); "
                         "choose another --out")


class RunLock(ExclusiveLock):
    """The exclusive lock on a run directory while one process trains in it (``DIR/.lock``,
    :class:`rkdo._io.ExclusiveLock`: a ``.lock`` that links elsewhere is refused, not followed)."""

    def __init__(self, out: Path) -> None:
        super().__init__(out, busy=lambda pid: (
            f"{out} is in use by another `rkdo train` (pid {pid}); wait for it to finish, or "
            "choose another --out"))


def start_run(out: Path, config: TrainConfig) -> None:
    """Create ``out``, drop a previous run's files, write ``config.json``."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in (METRICS_FILE, EVAL_FILE, CHECKPOINT_FILE, FIELDS_FILE, "metrics.csv"):
        (out / stale).unlink(missing_ok=True)
    save_config(out, config)


def save_config(out: Path, config: TrainConfig) -> None:
    """Replace ``config.json`` in ``out`` with ``config`` (atomically)."""
    write_json_atomic(out / CONFIG_FILE, asdict(config))


def read_config(out: Path) -> TrainConfig:
    """The config of the run in ``out`` (which must also hold a checkpoint)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file, not a run directory")
    if not ((out / CONFIG_FILE).exists() and (out / CHECKPOINT_FILE).exists()):
        raise ValueError(
            f"nothing to resume in {out}: expected {CONFIG_FILE} and {CHECKPOINT_FILE} there"
        )
    return load_config(out / CONFIG_FILE)


def load_config(path: Path) -> TrainConfig:
    """The :class:`TrainConfig` in ``path``, its values' types checked; errors name the file."""
    values = read_json(path)
    if not isinstance(values, dict):
        raise ValueError(f"{path} must hold a JSON object of settings, got "
                         f"{type(values).__name__}")
    try:
        return TrainConfig.from_dict(values)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error}; fix or restore the file") from None


def save_checkpoint(out: Path, state: dict[str, Any]) -> None:
    """Replace ``checkpoint.pt`` with ``state`` atomically (fsynced)."""
    save_state(out / CHECKPOINT_FILE, state)


def load_checkpoint(out: Path, device: torch.device) -> dict[str, Any]:
    """The saved ``checkpoint.pt`` state, tensors on ``device`` (one-line errors if damaged)."""
    return load_state(out / CHECKPOINT_FILE, device)


def truncate_metrics(out: Path, step: int, *, redo_eval: bool = False) -> None:
    """Drop log lines written after the checkpoint we resume from (they will be redone), and
    with ``redo_eval`` the evaluation lines at that step too."""
    path = out / METRICS_FILE
    if path.exists():
        write_jsonl_atomic(path, [
            r for r in read_jsonl(path, drop_torn_last=True) if r.get("step", 0) < step or (
                r.get("step", 0) == step and not (redo_eval and r.get("kind") == "eval"))])


def run_is_complete(out: str | os.PathLike[str], changes: dict[str, Any] | None = None) -> bool:
    """Whether the run in ``out`` has finished (its ``eval.json`` is at its last epoch, or at
    ``changes["epochs"]``): resuming it trains nothing."""
    out = Path(out)
    if not (out / EVAL_FILE).is_file() or not (out / CONFIG_FILE).is_file():
        return False
    epochs = (changes or {}).get("epochs") or load_config(out / CONFIG_FILE).epochs
    return read_json(out / EVAL_FILE).get("epoch") == epochs


def resumed_config(out: Path, lock: RunLock, changes: dict[str, Any] | None
                   ) -> TrainConfig | None:
    """The config to resume in ``out`` with ``changes`` (:func:`resume_config`), the lock held by
    rank 0; ``None`` if the run has finished."""
    if distributed.rank() == 0 and out.is_dir():
        lock.acquire()  # before reading: a live run may not have its first checkpoint yet
    read_config(out)  # says what is missing
    config = resume_config(out, changes)
    final = out / EVAL_FILE
    if final.exists() and read_json(final).get("epoch") == config.epochs:
        return None
    return config


def stopped_message(out: Path, signum: int) -> str:
    """What an interruption outside a training step leaves behind, and how to go on."""
    name = signal_name(signum)
    if not (out / CHECKPOINT_FILE).exists():
        return (f"interrupted by {name} before the first checkpoint; start again with "
                f"`rkdo train --out {out} --overwrite ...`")
    return (f"interrupted by {name}; the last checkpoint in {out} is kept; continue with "
            f"`rkdo train --resume {out}`")


RESUME_CHANGES = ("epochs", *EXECUTION_FIELDS)
"""Settings a resumed run may change: more epochs, and where/how it executes."""


def resume_config(out: Path, changes: dict[str, Any] | None) -> TrainConfig:
    """The saved config of the run in ``out`` with ``changes`` applied, refusing changes that
    would make the resumed run a different one (the caller checks the result's settings and
    saves it with :func:`save_config`)."""
    config = read_config(out)
    changes = {k: v for k, v in (changes or {}).items() if getattr(config, k, v) != v}
    refused = sorted(set(changes) - set(RESUME_CHANGES))
    if refused:
        flags = ", ".join("--" + name.replace("_", "-") for name in refused)
        raise ValueError(
            f"{flags} cannot change when resuming {out} (it keeps its saved {CONFIG_FILE}); "
            f"drop {'them' if len(refused) > 1 else 'it'}, or start a new run with --out")
    if "epochs" in changes:
        if changes["epochs"] < config.epochs:
            raise ValueError(f"--epochs {changes['epochs']} is fewer than the {config.epochs} of "
                             f"the run in {out}; a resumed run can only be extended")
        spanning = [flag for flag, on in (
            ("--lr-schedule cosine", config.lr_schedule != "none"),
            (f"--recursion {config.recursion}", config.resolved_recursion().startswith(
                "temporal"))) if on]
        if spanning:
            raise ValueError(f"--epochs cannot extend the run in {out}: its schedule "
                             f"({', '.join(spanning)}) spans the run's length; start a new run")
    return replace(config, **changes) if changes else config


class MetricsLog:
    """Appends records to ``metrics.jsonl``, the run's log, and mirrors them to the loggers the
    config asks for: TensorBoard (numbers), ``metrics.csv`` (rewritten from ``metrics.jsonl``
    by :meth:`flush`, so that it follows the log when a resumed run drops lines) and Weights &
    Biases in offline mode (numbers, under ``DIR/wandb``; one W&B run per run directory, so a
    resumed run continues it). Does nothing on processes that do not write (``enabled=False``).
    """

    def __init__(self, out: Path, *, enabled: bool, config: TrainConfig | None = None) -> None:
        self.path, self.enabled, self.writer, self.wandb = out / METRICS_FILE, enabled, None, None
        self.csv = bool(config is not None and config.csv)
        if not enabled or config is None:
            return
        if config.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / TENSORBOARD_DIR))
        if config.wandb:
            import hashlib

            import wandb

            run_id = hashlib.sha1(str(out.resolve()).encode()).hexdigest()[:16]
            self.wandb = wandb.init(mode="offline", dir=str(out), project="rkdo", name=out.name,
                                    id=run_id, resume="allow", config=asdict(config))

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        append_jsonl(self.path, record)
        numbers = {f"{record.get('kind', 'train')}/{key}": value for key, value in record.items()
                   if isinstance(value, (int, float)) and not isinstance(value, bool)
                   and key not in ("step", "epoch")}
        if self.writer is not None:
            for key, value in numbers.items():
                self.writer.add_scalar(key, value, record["step"])
        if self.wandb is not None:
            self.wandb.log(numbers, step=record["step"])

    def flush(self) -> None:
        """Rewrite ``metrics.csv`` from ``metrics.jsonl`` (with ``csv``)."""
        if self.enabled and self.csv:
            write_metrics_csv(self.path, self.path.with_suffix(".csv"))

    def close(self) -> None:
        self.flush()
        if self.writer is not None:
            self.writer.close()
        if self.wandb is not None:
            self.wandb.finish()


def write_metrics_csv(jsonl: Path, csv_path: Path) -> None:
    """``metrics.jsonl`` as a CSV table: a ``kind`` column (train, epoch, eval), then one column
    per key in order of first appearance; empty cells where a record lacks a key."""
    import csv
    import io

    records = [{"kind": "train", **r} for r in read_jsonl(jsonl, drop_torn_last=True)]
    columns = list(dict.fromkeys(key for record in records for key in record))
    text = io.StringIO()
    table = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    table.writeheader()
    table.writerows(records)
    write_text_atomic(csv_path, text.getvalue())


@dataclass
class Run:
    """A trained run loaded back from its directory."""

    directory: Path
    config: TrainConfig
    model: nn.Module
    loss: nn.Module
    data: Any
    step: int
    parts: Components | None = None
    """What the run's config builds (data, augmentation, ...): what its evaluation used."""


def load_run(directory: str | os.PathLike[str], device: str = "cpu") -> Run:
    """Load a run directory's config, data and final model (in eval mode)."""
    directory = Path(directory)
    if not (directory / CONFIG_FILE).exists() or not (directory / CHECKPOINT_FILE).exists():
        raise ValueError(
            f"{directory} is not a run directory: expected {CONFIG_FILE} and {CHECKPOINT_FILE} "
            "(written by `rkdo train --out DIR`)"
        )
    config = load_config(directory / CONFIG_FILE)
    torch_device = distributed.resolve_device(device)
    state = load_state(directory / CHECKPOINT_FILE, torch_device, keys=("model", "loss", "step"))
    bad = first_nonfinite(state["model"])
    if bad is not None:
        raise ValueError(
            f"{directory / CHECKPOINT_FILE} holds non-finite weights ({bad}): the run diverged "
            "and its model cannot be evaluated; train it again with a lower --lr")
    parts = Components(config, torch_device)
    for module, key in ((parts.model, "model"), (parts.loss, "loss")):
        load_weights(module, state[key], directory / CHECKPOINT_FILE, directory / CONFIG_FILE)
    parts.model.eval()
    return Run(directory, config, parts.model, parts.loss, parts.data, int(state["step"]), parts)
