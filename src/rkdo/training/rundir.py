"""The run directory: its files, the checkpoint, the metrics log, and loading a run back.

    DIR/config.json      the TrainConfig, one key per field (JSON, sorted keys)
    DIR/metrics.jsonl    one JSON record a line: train lines {step, epoch, loss, lr, images_per_s},
                         {kind: "epoch", step, epoch, mean_loss}, {kind: "eval", epoch, step, ...}
    DIR/checkpoint.pt    torch.save of {model, loss, optimizer, scheduler, rng: {augment, torch},
                         step, evals_done, epoch_loss, epoch_steps}
    DIR/eval.json        the final evaluation {epoch, step, metric: value, ...}
    DIR/fields.npz       recorded teacher/student fields (:mod:`rkdo.fields`)
    DIR/tensorboard/     TensorBoard events (``--tensorboard``)

Every file is replaced atomically with fsync (:mod:`rkdo._io`), so an interrupted run leaves the
last good checkpoint; on resume the metrics written after it are dropped and redone.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rkdo._io import (
    append_jsonl,
    atomic_writer,
    read_json,
    read_jsonl,
    write_json_atomic,
    write_jsonl_atomic,
)
from rkdo.fields import FIELDS_FILE
from rkdo.training.components import Components
from rkdo.training.config import TrainConfig

__all__ = [
    "CONFIG_FILE", "METRICS_FILE", "EVAL_FILE", "CHECKPOINT_FILE", "FIELDS_FILE",
    "TENSORBOARD_DIR", "RunExistsError", "Run", "check_out_dir", "start_run", "read_config",
    "save_checkpoint", "load_checkpoint", "truncate_metrics", "MetricsLog", "load_run",
]

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
EVAL_FILE = "eval.json"
CHECKPOINT_FILE = "checkpoint.pt"
TENSORBOARD_DIR = "tensorboard"


class RunExistsError(ValueError):
    """The output directory already holds a run that this command would overwrite."""


def check_out_dir(out: Path, config: TrainConfig, overwrite: bool) -> None:
    """Refuse to start a new run in ``out`` if that would overwrite another one by accident."""
    config_path = out / CONFIG_FILE
    if not config_path.exists():
        if out.exists() and any(out.iterdir()) and not overwrite:
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


def start_run(out: Path, config: TrainConfig) -> None:
    """Create ``out``, drop a previous run's files, write ``config.json``."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in (METRICS_FILE, EVAL_FILE, CHECKPOINT_FILE, FIELDS_FILE):
        (out / stale).unlink(missing_ok=True)
    write_json_atomic(out / CONFIG_FILE, asdict(config))


def read_config(out: Path) -> TrainConfig:
    """The config of the run in ``out`` (which must also hold a checkpoint)."""
    if not ((out / CONFIG_FILE).exists() and (out / CHECKPOINT_FILE).exists()):
        raise ValueError(
            f"nothing to resume in {out}: expected {CONFIG_FILE} and {CHECKPOINT_FILE} there"
        )
    return TrainConfig.from_dict(read_json(out / CONFIG_FILE))


def save_checkpoint(out: Path, state: dict[str, Any]) -> None:
    """Replace ``checkpoint.pt`` with ``state`` atomically (fsynced)."""
    atomic_writer(out / CHECKPOINT_FILE, lambda tmp: torch.save(state, tmp))


def load_checkpoint(out: Path, device: torch.device) -> dict[str, Any]:
    """The saved ``checkpoint.pt`` state, tensors on ``device``."""
    return torch.load(out / CHECKPOINT_FILE, map_location=device, weights_only=True)


def truncate_metrics(out: Path, step: int) -> None:
    """Drop log lines written after the checkpoint we resume from (they will be redone)."""
    path = out / METRICS_FILE
    if path.exists():
        write_jsonl_atomic(path, [r for r in read_jsonl(path) if r.get("step", 0) <= step])


class MetricsLog:
    """Appends records to ``metrics.jsonl`` (and mirrors numbers to TensorBoard if asked);
    does nothing on processes that do not write (``enabled=False``)."""

    def __init__(self, out: Path, *, enabled: bool, tensorboard: bool = False) -> None:
        self.path, self.enabled, self.writer = out / METRICS_FILE, enabled, None
        if tensorboard and enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as error:
                raise ValueError("--tensorboard needs `pip install rkdo[tensorboard]`") from error
            self.writer = SummaryWriter(str(out / TENSORBOARD_DIR))

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        append_jsonl(self.path, record)
        if self.writer is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("step", "epoch"):
                    self.writer.add_scalar(f"{record.get('kind', 'train')}/{key}", value,
                                           record["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@dataclass
class Run:
    """A trained run loaded back from its directory."""

    directory: Path
    config: TrainConfig
    model: nn.Module
    loss: nn.Module
    data: Any
    step: int


def load_run(directory: str | os.PathLike[str], device: str = "cpu") -> Run:
    """Load a run directory's config, data and final model (in eval mode)."""
    directory = Path(directory)
    if not (directory / CONFIG_FILE).exists() or not (directory / CHECKPOINT_FILE).exists():
        raise ValueError(
            f"{directory} is not a run directory: expected {CONFIG_FILE} and {CHECKPOINT_FILE} "
            "(written by `rkdo train --out DIR`)"
        )
    config = TrainConfig.from_dict(read_json(directory / CONFIG_FILE))
    torch_device = torch.device(device)
    parts = Components(config, torch_device)
    state = load_checkpoint(directory, torch_device)
    parts.model.load_state_dict(state["model"])
    parts.loss.load_state_dict(state["loss"])
    parts.model.eval()
    return Run(directory, config, parts.model, parts.loss, parts.data, int(state["step"]))
