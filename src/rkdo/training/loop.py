"""Training: two augmented views, an encoder, an I-Con / RKDO loss, checkpoints and resume.

One step of self-supervised neighbourhood-KL training, for a batch ``x`` of sample indices ``I``:

    v1, v2 = augment(x), augment(x)                  (batched, per-sample random parameters)
    z1, z2 = f(v1), f(v2)                            (L2-normalised embeddings)
    L      = loss(z1, z2, ids=I, labels=y)           (I-Con, in-step RKDO or temporal RKDO)
    theta <- Adam(theta, dL/dtheta)

Everything a run needs to continue after an interruption is in one atomically written checkpoint
(model, loss, optimiser and scheduler state, the augmentation and global RNG states, the step
counter), so a resumed CPU run ends with the same weights as an uninterrupted one. Data parallel
training runs under ``torchrun`` (``torch.distributed``): every rank draws its part of each epoch
from a :class:`~torch.utils.data.DistributedSampler`, losses gather candidates from all ranks, and
only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from rkdo import distributed, methods

__all__ = [
    "TrainConfig",
    "TrainingError",
    "RunExistsError",
    "Run",
    "train",
    "load_run",
    "build_loss",
    "evaluate_initial",
    "RECURSIONS",
]

METHOD_CHOICES = (*methods.names(), "lightly-ntxent")
RECURSIONS = ("auto", "none", "in-step", "temporal", "temporal+in-step")
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("none", "cosine")
PRECISIONS = ("fp32", "bf16")
PROTOCOLS = ("full", "paper", "both", "none")

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
EVAL_FILE = "eval.json"
CHECKPOINT_FILE = "checkpoint.pt"
FIELDS_FILE = "fields.npz"


class TrainingError(RuntimeError):
    """The run cannot go on (e.g. a non-finite loss); the message says where and what is kept."""


class RunExistsError(ValueError):
    """The output directory already holds a run that this command would overwrite."""


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved as ``config.json`` in the run directory."""

    dataset: str = "digits"
    data_root: str | None = None
    download: bool = False
    image_size: int | None = None
    encoder: str = "small-cnn"
    embedding_dim: int = 64
    hidden_dim: int = 512
    method: str = "rkdo"
    recursion: str = "auto"
    temperature: float = 0.5
    alpha: float = 0.5
    depth: int = 3
    beta: float = 0.1
    debias: float | None = None
    detach_teacher: bool = False
    form: str | None = None
    perplexity: float = 30.0
    n_clusters: int | None = None
    alpha_schedule: str = "constant"
    alpha_final: float = 0.0
    epochs: int = 10
    steps_per_epoch: int | None = None
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 1e-5
    momentum: float = 0.9
    lr_schedule: str = "none"
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    channels_last: bool = False
    eval_protocol: str = "full"
    eval_epochs: list[int] = field(default_factory=list)
    eval_projection: bool = False
    probe_train_size: int | None = None
    checkpoint_every: int = 0
    log_every: int = 10
    record_field: int = 0
    record_every: int = 10
    tensorboard: bool = False

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; known keys: {sorted(known)}")
        return cls(**values)

    def resolved_recursion(self) -> str:
        if self.recursion != "auto":
            return self.recursion
        method = methods.METHODS.get(self.method)
        return "in-step" if method is not None and method.recursive else "none"


EXECUTION_FIELDS = ("data_root", "download", "device", "checkpoint_every", "log_every",
                    "tensorboard")
"""TrainConfig fields that say where/how a run executes, not what it computes: they may be
overridden on the command line and do not make a stored result stale."""

LOSS_FIELDS = ("method", "recursion", "temperature", "alpha", "depth", "beta", "debias",
               "detach_teacher", "form", "perplexity", "n_clusters")
"""TrainConfig fields that choose and parameterise the loss."""


def config_identity(values: dict[str, Any]) -> dict[str, Any]:
    """What a run computes: ``values`` normalised through :meth:`TrainConfig.from_dict` (missing
    keys take their defaults, so adding a field keeps old results), execution fields dropped."""
    normal = asdict(TrainConfig.from_dict(dict(values)))
    return {k: v for k, v in normal.items() if k not in EXECUTION_FIELDS}


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of: {', '.join(choices)}")


def validate(config: TrainConfig) -> None:
    """Refuse impossible settings before any work starts (each error says what to change)."""
    from rkdo.vision import data as data_module
    from rkdo.vision import models

    if not (config.dataset in data_module.DATASETS or config.dataset.startswith("imagefolder:")):
        raise ValueError(
            f"unknown dataset {config.dataset!r}; choose one of: "
            f"{', '.join(data_module.DATASETS)}, imagefolder:PATH"
        )
    _choice("encoder", config.encoder, models.ENCODERS)
    _choice("method", config.method, METHOD_CHOICES)
    _choice("recursion", config.recursion, RECURSIONS)
    _choice("optimizer", config.optimizer, OPTIMIZERS)
    _choice("lr schedule", config.lr_schedule, SCHEDULES)
    _choice("precision", config.precision, PRECISIONS)
    _choice("eval protocol", config.eval_protocol, PROTOCOLS)
    for name in ("epochs", "batch_size", "embedding_dim", "hidden_dim", "log_every",
                 "record_every"):
        if int(getattr(config, name)) < 1:
            raise ValueError(f"{name.replace('_', '-')} must be >= 1, got {getattr(config, name)}")
    if config.steps_per_epoch is not None and config.steps_per_epoch < 1:
        raise ValueError(f"steps-per-epoch must be >= 1, got {config.steps_per_epoch}")
    if config.checkpoint_every < 0 or config.record_field < 0:
        raise ValueError("checkpoint-every and record-field must be >= 0")
    if not config.lr > 0:
        raise ValueError(f"lr must be > 0, got {config.lr}")
    bad_epochs = [e for e in config.eval_epochs if not 1 <= e <= config.epochs]
    if bad_epochs:
        raise ValueError(f"eval-epochs {bad_epochs} must lie in [1, epochs={config.epochs}]")
    recursion = config.resolved_recursion()
    if recursion.startswith("temporal") and config.method not in ("simclr", "icon", "rkdo",
                                                                  "supcon"):
        raise ValueError(
            f"temporal recursion supports the methods simclr, icon, rkdo and supcon, "
            f"not {config.method!r}"
        )
    native = data_module.default_image_size(config.dataset)
    size = config.image_size or native
    if size * 2 < native:
        raise ValueError(
            f"image size {size} would throw away most of the {native} px {config.dataset} "
            f"images; use --image-size >= {math.ceil(native / 2)}"
        )
    if size < models.min_image_size(config.encoder):
        raise ValueError(
            f"encoder {config.encoder!r} needs images of at least "
            f"{models.min_image_size(config.encoder)} px, got {size}; choose another --encoder "
            "or a larger --image-size"
        )
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "device 'cuda' requested but no CUDA device is available; use --device cpu"
        )
    # building the loss checks every loss hyper-parameter range now, not at the first step
    build_loss(config, n_samples=2)


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device(name)


def build_loss(config: TrainConfig, n_samples: int, total_steps: int = 1) -> nn.Module:
    """The loss module the config asks for (a preset of :mod:`rkdo.methods`, maybe temporal)."""
    recursion = config.resolved_recursion()
    if config.method == "lightly-ntxent":
        if recursion != "none":
            raise ValueError("lightly-ntxent is an outside baseline: use --recursion none/auto")
        from rkdo.training.baselines import LightlyNTXent

        return LightlyNTXent(config.temperature, gather_distributed=distributed.is_distributed())
    method = methods.METHODS[config.method]
    options: dict[str, Any] = {}
    if "temperature" in method.options:
        options["temperature"] = config.temperature
    if "perplexity" in method.options:
        options["perplexity"] = config.perplexity
    if "n_clusters" in method.options:
        options["n_clusters"] = config.n_clusters or 10
        options["dim"] = config.embedding_dim
    in_step = recursion in ("in-step", "temporal+in-step")
    if in_step:
        options.update(alpha=config.alpha, depth=config.depth, beta=config.beta,
                       detach_teacher=config.detach_teacher)
    distributed_run = distributed.is_distributed()
    if recursion.startswith("temporal"):
        from rkdo.teacher import TemporalRKDOLoss

        inner = methods.get(config.method, recursive=True, debias=0.0, form=config.form,
                            gather_distributed=distributed_run, **options) if in_step else None
        return TemporalRKDOLoss(
            n_samples,
            alpha=config.alpha,
            schedule=config.alpha_schedule,
            total_steps=total_steps,
            alpha_final=config.alpha_final,
            temperature=config.temperature,
            beta=config.beta,
            debias=config.debias if config.debias is not None else method.debias,
            supervisory="labels" if config.method == "supcon" else "augmentation",
            in_step=inner,
            gather_distributed=distributed_run,
        )
    return methods.get(
        config.method,
        recursive=in_step,
        debias=config.debias,
        form=config.form,
        gather_distributed=distributed_run,
        **options,
    )


def _write_json_atomic(path: Path, payload: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _save_atomic(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


@dataclass
class Run:
    """A trained run loaded back from its directory."""

    directory: Path
    config: TrainConfig
    model: nn.Module
    loss: nn.Module
    data: Any
    step: int


class _Setup:
    """Model, loss, optimiser, data and augmentation for a config (shared by train and load)."""

    def __init__(self, config: TrainConfig, device: torch.device, world: int = 1) -> None:
        from rkdo.vision import data as data_module
        from rkdo.vision.augment import TwoViews
        from rkdo.vision.models import build_model

        self.data = data_module.load(config.dataset, config.data_root, config.download)
        self.image_size = config.image_size or data_module.default_image_size(config.dataset)
        n_train = len(self.data.train)
        if config.batch_size > n_train:
            raise ValueError(
                f"batch size {config.batch_size} is larger than the {config.dataset} training "
                f"split ({n_train} samples); use --batch-size <= {n_train}"
            )
        if config.batch_size % world:
            raise ValueError(
                f"batch size {config.batch_size} must be divisible by the {world} processes"
            )
        self.local_batch = config.batch_size // world
        full_epoch = n_train // config.batch_size
        self.steps_per_epoch = min(config.steps_per_epoch or full_epoch, full_epoch)
        self.total_steps = self.steps_per_epoch * config.epochs
        torch.manual_seed(config.seed)
        self.model = build_model(
            config.encoder,
            in_channels=self.data.channels,
            image_size=self.image_size,
            embedding_dim=config.embedding_dim,
            hidden_dim=config.hidden_dim,
        ).to(device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.loss = build_loss(config, n_train, self.total_steps).to(device)
        self.augment = TwoViews(self.image_size, self.data.channels)
        parameters = list(self.model.parameters()) + list(self.loss.parameters())
        if config.optimizer == "adam":
            self.optimizer: torch.optim.Optimizer = torch.optim.Adam(
                parameters, lr=config.lr, weight_decay=config.weight_decay
            )
        else:
            self.optimizer = torch.optim.SGD(
                parameters, lr=config.lr, momentum=config.momentum,
                weight_decay=config.weight_decay,
            )
        self.scheduler = (
            torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=self.total_steps)
            if config.lr_schedule == "cosine"
            else torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda _: 1.0)
        )


def _check_out_dir(out: Path, config: TrainConfig, overwrite: bool) -> None:
    config_path = out / CONFIG_FILE
    if not config_path.exists():
        if out.exists() and any(out.iterdir()) and not overwrite:
            raise RunExistsError(
                f"{out} exists and is not empty; choose another --out or pass --overwrite"
            )
        return
    if overwrite:
        return
    previous = json.loads(config_path.read_text())
    if previous == asdict(config):
        hint = (f"continue it with `rkdo train --resume {out}`"
                if (out / CHECKPOINT_FILE).exists() else "")
        raise RunExistsError(
            f"{out} already holds this run; {hint or 'choose another --out'} "
            "or pass --overwrite to start again"
        )
    changed = sorted(k for k in asdict(config) if previous.get(k) != asdict(config)[k])
    raise RunExistsError(
        f"{out} holds a different run (differs in: {', '.join(changed)}); choose another --out "
        "or pass --overwrite"
    )


def _epoch_indices(sampler: Any, epoch: int, steps: int, local_batch: int) -> Tensor:
    sampler.set_epoch(epoch)
    order = torch.as_tensor(list(iter(sampler)), dtype=torch.long)
    return order[: steps * local_batch].view(steps, local_batch)


def _rng_state(generator: torch.Generator) -> dict[str, Tensor]:
    return {"augment": generator.get_state(), "torch": torch.get_rng_state()}


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop log lines written after the checkpoint we resume from (they will be redone)."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in kept))
    os.replace(tmp, path)


class _Recorder:
    """Teacher p and student q over a fixed probe set, every ``record_every`` steps.

    The probe set is the first ``size`` test images, seen through one fixed pair of views so
    that only the model changes between frames. With temporal recursion the teacher is the
    field itself, which exists only for training samples: the probe set is then the first
    ``size`` training images and the teacher their field rows restricted to the probe set.
    """

    def __init__(self, setup: _Setup, size: int, seed: int, device: torch.device,
                 temporal: bool) -> None:
        split = setup.data.train if temporal else setup.data.test
        size = min(size, len(split))
        self.index = torch.arange(size, device=device)
        self.images = split.images[:size].to(device)
        self.labels = split.labels[:size]
        generator = torch.Generator().manual_seed(seed + 12345)
        self.views = setup.augment(self.images.cpu(), generator)
        self.temporal = temporal
        self.steps: list[int] = []
        self.teacher: list[Tensor] = []
        self.student: list[Tensor] = []

    @torch.no_grad()
    def record(self, model: nn.Module, loss: nn.Module, step: int, device: torch.device) -> None:
        from rkdo.neighbourhood import build_neighbourhood

        was_training = model.training
        model.eval()
        z1, z2 = (model(v.to(device)) for v in self.views)
        model.train(was_training)
        nb = build_neighbourhood(z1, z2, form="pair", labels=self.labels.to(device))
        if self.temporal:
            rows = loss.rows(self.index)[:, self.index].float()
            teacher = rows / rows.sum(dim=-1, keepdim=True).clamp_min(1e-30)
            student = loss.learned.log_prob(nb, loss.temperature_at(step)).exp()
        else:
            teacher = loss.teacher_log_prob(nb).exp()
            student = loss.learned.log_prob(nb).exp()
        self.steps.append(step)
        self.teacher.append(teacher.float().cpu())
        self.student.append(student.float().cpu())

    def save(self, path: Path) -> None:
        import numpy as np

        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(
            tmp,
            steps=np.asarray(self.steps, dtype=np.int64),
            teacher=torch.stack(self.teacher).numpy(),
            student=torch.stack(self.student).numpy(),
            labels=self.labels.numpy().astype(np.int64),
        )
        os.replace(tmp, path)


def _batches(
    sampler: Any, setup: _Setup, start_step: int, epochs: int
) -> Iterator[tuple[int, Tensor]]:
    """``(step, sample indices)`` from ``start_step`` on; each epoch's order from the sampler."""
    steps = setup.steps_per_epoch
    first_epoch = start_step // steps
    for epoch in range(first_epoch, epochs):
        order = _epoch_indices(sampler, epoch, steps, setup.local_batch)
        first = start_step - epoch * steps if epoch == first_epoch else 0
        for position in range(first, steps):
            yield epoch * steps + position, order[position]


def train(
    config: TrainConfig,
    out: str | os.PathLike[str],
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train (or resume) a run in ``out`` and return its final evaluation.

    Args:
        config: the run's settings (ignored when resuming: the saved ``config.json`` is used).
        out: run directory: ``config.json``, ``metrics.jsonl``, ``checkpoint.pt``, ``eval.json``.
        resume: continue the run saved in ``out`` from its last checkpoint.
        overwrite: allow replacing a different or finished run in ``out``.
        progress: show a progress bar (rank 0 only).
        stop_after: stop (with a checkpoint) after this many steps in total, as an interruption
            would; used to test resume.
    """
    out = Path(out)
    owns_group = _init_distributed(config.device if config is not None else "auto")
    try:
        return _train(config, out, resume=resume, overwrite=overwrite, progress=progress,
                      stop_after=stop_after)
    finally:
        if owns_group:
            dist.destroy_process_group()


def _init_distributed(device: str) -> bool:
    """Join the process group ``torchrun`` describes in the environment (once); True if we did."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return False
    use_cuda = torch.cuda.is_available() and device != "cpu"
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return True


def _train(
    config: TrainConfig | None,
    out: Path,
    *,
    resume: bool,
    overwrite: bool,
    progress: bool,
    stop_after: int | None,
) -> dict[str, Any]:
    if resume:
        config_path = out / CONFIG_FILE
        if not (config_path.exists() and (out / CHECKPOINT_FILE).exists()):
            raise ValueError(
                f"nothing to resume in {out}: expected {CONFIG_FILE} and {CHECKPOINT_FILE} there"
            )
        config = TrainConfig.from_dict(json.loads(config_path.read_text()))
    validate(config)
    device = _resolve_device(config.device)
    world, rank = distributed.world_size(), distributed.rank()
    is_writer = rank == 0
    if not resume and is_writer:
        _check_out_dir(out, config, overwrite)
    setup = _Setup(config, device, world)
    model, loss_fn, optimizer, scheduler = setup.model, setup.loss, setup.optimizer, setup.scheduler

    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(
        range(len(setup.data.train)), num_replicas=world, rank=rank, shuffle=True,
        seed=config.seed, drop_last=True,
    )
    generator = torch.Generator().manual_seed(config.seed * 1000 + rank)
    train_images = setup.data.train.images.to(device)
    train_labels = setup.data.train.labels.to(device)
    needs_inputs = config.method in methods.METHODS and \
        "inputs" in methods.METHODS[config.method].needs

    step, evals_done = 0, []
    if resume:
        state = torch.load(out / CHECKPOINT_FILE, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        loss_fn.load_state_dict(state["loss"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["rng"]["augment"])
        torch.set_rng_state(state["rng"]["torch"])
        step, evals_done = int(state["step"]), list(state["evals_done"])
        if is_writer:
            _truncate_metrics(out / METRICS_FILE, step)
    elif is_writer:
        out.mkdir(parents=True, exist_ok=True)
        for stale in (METRICS_FILE, EVAL_FILE, CHECKPOINT_FILE, FIELDS_FILE):
            (out / stale).unlink(missing_ok=True)
        _write_json_atomic(out / CONFIG_FILE, asdict(config))

    if distributed.is_distributed():
        model = nn.parallel.DistributedDataParallel(model)
    raw_model = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model

    temporal = config.resolved_recursion().startswith("temporal")
    if config.record_field and config.method not in methods.METHODS:
        raise ValueError(f"--record-field needs one of rkdo's own methods, not {config.method!r}")
    recorder = (_Recorder(setup, config.record_field, config.seed, device, temporal)
                if config.record_field and is_writer and not resume else None)
    writer = None
    if config.tensorboard and is_writer:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ValueError("--tensorboard needs `pip install rkdo[tensorboard]`") from error
        writer = SummaryWriter(str(out / "tensorboard"))

    def checkpoint(at_step: int) -> None:
        if not is_writer:
            return
        if not bool(torch.isfinite(epoch_loss)):
            # a non-finite loss since the last log line: never replace a good checkpoint
            raise TrainingError(
                f"non-finite loss between the last log line and step {at_step}; the last good "
                f"checkpoint is kept. Lower --lr or raise --temperature"
            )
        _save_atomic(out / CHECKPOINT_FILE, {
            "model": raw_model.state_dict(),
            "loss": loss_fn.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": _rng_state(generator),
            "step": at_step,
            "evals_done": evals_done,
            "epoch_loss": epoch_loss.detach().cpu(),
            "epoch_steps": epoch_steps,
        })

    def log(record: dict[str, Any]) -> None:
        if not is_writer:
            return
        with open(out / METRICS_FILE, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if writer is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("step", "epoch"):
                    writer.add_scalar(f"{record.get('kind', 'train')}/{key}", value,
                                      record["step"])

    def run_eval(epoch: int, at_step: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        if config.eval_protocol != "none" and is_writer:
            from rkdo.evaluation.protocols import evaluate

            result = evaluate(
                raw_model, setup.data, setup.augment, protocol=config.eval_protocol,
                projection=config.eval_projection, seed=config.seed, device=device,
                probe_train_size=config.probe_train_size,
            )
            log({"kind": "eval", "epoch": epoch, "step": at_step, **result})
        if distributed.is_distributed():
            dist.barrier()
        return result

    autocast = (torch.autocast(device_type=device.type, dtype=torch.bfloat16)
                if config.precision == "bf16" else contextlib.nullcontext())
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format

    bar = None
    if progress and is_writer:
        from tqdm.auto import tqdm

        bar = tqdm(total=setup.total_steps, initial=step, unit="step", dynamic_ncols=True,
                   desc=f"{config.method} {config.dataset}")
    model.train()
    window_start, window_steps, last_loss = time.perf_counter(), 0, float("nan")
    # summed on the device, read once per epoch: no host sync in the step
    epoch_loss, epoch_steps = torch.zeros((), device=device), 0
    if resume:
        epoch_loss += state["epoch_loss"].to(device)
        epoch_steps = int(state["epoch_steps"])
    if recorder is not None and step == 0:
        recorder.record(raw_model, loss_fn, 0, device)
    for step_index, index in _batches(sampler, setup, step, config.epochs):
        if stop_after is not None and step_index >= stop_after:
            checkpoint(step_index)
            if bar is not None:
                bar.close()
            return {"stopped_at": step_index}
        index = index.to(device)
        images = train_images[index]
        view1, view2 = setup.augment(images, generator)
        # the images already live on the device; augmentation keeps them there
        view1 = view1.contiguous(memory_format=memory_format)
        view2 = view2.contiguous(memory_format=memory_format)
        with autocast:
            z1, z2 = model(view1), model(view2)
            extras: dict[str, Tensor] = {"labels": train_labels[index]}
            if temporal:
                loss = loss_fn(z1, z2, index=index, step=step_index, **extras)
            else:
                if needs_inputs:
                    extras["inputs"] = view1.flatten(1).float()
                if loss_fn.form == "single":
                    loss = loss_fn(z1, **extras)
                else:
                    loss = loss_fn(z1, z2, **extras)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        done = step_index + 1
        window_steps += 1
        epoch_loss += loss.detach().float()
        epoch_steps += 1
        end_of_epoch = done % setup.steps_per_epoch == 0
        if done % config.log_every == 0 or end_of_epoch or done == setup.total_steps:
            last_loss = float(loss.detach())
            if not math.isfinite(last_loss):
                kept = (f"the last good checkpoint ({out / CHECKPOINT_FILE}) is kept"
                        if (out / CHECKPOINT_FILE).exists() else "no checkpoint was written yet")
                raise TrainingError(
                    f"non-finite loss ({last_loss}) at step {done}; {kept}. Lower --lr or raise "
                    "--temperature"
                )
            elapsed = time.perf_counter() - window_start
            images_per_s = window_steps * config.batch_size / max(elapsed, 1e-9)
            log({"step": done, "epoch": done / setup.steps_per_epoch, "loss": last_loss,
                 "lr": scheduler.get_last_lr()[0], "images_per_s": images_per_s})
            if bar is not None:
                bar.set_postfix(loss=f"{last_loss:.4f}", img_s=f"{images_per_s:.0f}")
            window_start, window_steps = time.perf_counter(), 0
        if end_of_epoch:
            log({"kind": "epoch", "step": done, "epoch": done // setup.steps_per_epoch,
                 "mean_loss": float(epoch_loss) / max(epoch_steps, 1)})
            epoch_loss.zero_()
            epoch_steps = 0
        if bar is not None:
            bar.update(1)
        if recorder is not None and done % config.record_every == 0:
            recorder.record(raw_model, loss_fn, done, device)
        completed_epoch = done // setup.steps_per_epoch
        if end_of_epoch and completed_epoch in config.eval_epochs and \
                completed_epoch not in evals_done and completed_epoch != config.epochs:
            run_eval(completed_epoch, done)
            evals_done.append(completed_epoch)
            checkpoint(done)
        elif config.checkpoint_every and done % config.checkpoint_every == 0:
            checkpoint(done)
    if bar is not None:
        bar.close()
    checkpoint(setup.total_steps)
    if recorder is not None:
        recorder.save(out / FIELDS_FILE)
    final_eval = run_eval(config.epochs, setup.total_steps)
    if is_writer:
        final_eval = {"epoch": config.epochs, "step": setup.total_steps, **final_eval}
        _write_json_atomic(out / EVAL_FILE, final_eval)
    if writer is not None:
        writer.close()
    return final_eval


def load_run(directory: str | os.PathLike[str], device: str = "cpu") -> Run:
    """Load a run directory's config, data and final model (in eval mode)."""
    directory = Path(directory)
    config_path, checkpoint_path = directory / CONFIG_FILE, directory / CHECKPOINT_FILE
    if not config_path.exists() or not checkpoint_path.exists():
        raise ValueError(
            f"{directory} is not a run directory: expected {CONFIG_FILE} and {CHECKPOINT_FILE} "
            "(written by `rkdo train --out DIR`)"
        )
    config = TrainConfig.from_dict(json.loads(config_path.read_text()))
    torch_device = torch.device(device)
    setup = _Setup(config, torch_device)
    state = torch.load(checkpoint_path, map_location=torch_device, weights_only=True)
    setup.model.load_state_dict(state["model"])
    setup.loss.load_state_dict(state["loss"])
    setup.model.eval()
    return Run(directory, config, setup.model, setup.loss, setup.data, int(state["step"]))


def evaluate_initial(config: TrainConfig, device: str = "cpu") -> dict[str, Any]:
    """Evaluate the *untrained* encoder of ``config`` (same seed, same init): the floor row."""
    from rkdo.evaluation.protocols import evaluate

    validate(config)
    setup = _Setup(config, torch.device(device))
    return evaluate(setup.model, setup.data, setup.augment, protocol=config.eval_protocol,
                    projection=config.eval_projection, seed=config.seed, device=device,
                    probe_train_size=config.probe_train_size)
