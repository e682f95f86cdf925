"""The run configuration: every setting of a training run, each field describing itself.

A :class:`TrainConfig` is saved as ``config.json`` in the run directory (a JSON object, one key
per field, sorted). Each field carries its own metadata, from which the rest is derived:

    group        data | model | loss | optimisation | evaluation | execution | recording
                 (the argument groups of ``rkdo train --help``)
    help         the flag's help text
    execution    True for settings that say where/how a run executes, not what it computes:
                 they may be overridden and are left out of :func:`config_identity`
    choices      the allowed values (the loss checks its own hyper-parameters' ranges)
    at_least     the smallest allowed integer (``None`` values are allowed for optional fields)
    before       for a field whose default is not what runs did before it existed: the value a
                 stored ``config.json`` without the key was computed with (its default otherwise)

This module only declares: the checks that need the data, the devices or the loss live in
:mod:`rkdo.training.checks`, which set-up calls once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any

from rkdo.evaluation.names import PROTOCOLS
from rkdo.fields import MIN_POINTS
from rkdo.method_table import METHODS, Method
from rkdo.schedules import ALPHA_SCHEDULES
from rkdo.vision.catalogue import ENCODERS, NOISE_KINDS, default_image_size

__all__ = [
    "GROUPS",
    "TrainConfig",
    "EXECUTION_FIELDS",
    "LOSS_FIELDS",
    "METHOD_CHOICES",
    "RECURSIONS",
    "config_identity",
]

GROUPS = ("data", "model", "loss", "optimisation", "evaluation", "execution", "recording")
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("none", "cosine", "warmup-cosine")
VIEWS_FORWARD = ("joint", "separate")
PRECISIONS = ("fp32", "bf16")
EVAL_PROTOCOLS = (*PROTOCOLS, "noisy", "none")
METHOD_CHOICES: tuple[str, ...] = tuple(METHODS)
"""``--method``'s choices: every entry of the registry :data:`rkdo.method_table.METHODS`."""
RECURSIONS = ("auto", "none", "in-step", "temporal", "temporal+in-step")


def _option(
    default: Any,
    group: str,
    help: str,
    *,
    execution: bool = False,
    choices: tuple[str, ...] | None = None,
    at_least: int | None = None,
    before: Any = None,
) -> Any:
    """A dataclass field with its metadata (see the module docstring)."""
    metadata = {"group": group, "help": help, "execution": execution, "choices": choices,
                "at_least": at_least, "before": before}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved as ``config.json`` in the run directory."""

    dataset: str = _option(
        "digits", "data",
        "digits (embedded, no download), fashion-mnist, cifar10, cifar100, stl10 or "
        "imagefolder:PATH (PATH/train and PATH/test class folders)")
    data_root: str | None = _option(
        None, "data",
        "where the dataset lives (fashion-mnist default: /usr/share/datasets/fashion-mnist, "
        "from `apt-get install dataset-fashion-mnist`)", execution=True)
    download: bool = _option(
        False, "data", "download the dataset with torchvision if it is not under --data-root",
        execution=True)
    holdout_fraction: float | None = _option(
        None, "data",
        "imagefolder:PATH with one folder of class folders (no train/ and test/): the share of "
        "each class held out for evaluation, a seeded stratified split (default 0.2)")
    validation_size: int = _option(
        0, "data",
        "hold out N training images (the last N of a fixed seeded permutation, the same for "
        "every run) and evaluate on them instead of the test split: for choosing settings "
        "(0: evaluate on the test split)", at_least=0)
    train_size: int | None = _option(
        None, "data",
        "train on a class-stratified subset of N training images (fixed seed, the same images "
        "for every run; default: the whole split)", at_least=2)
    label_noise: float = _option(
        0.0, "data",
        "flip this fraction of the training labels (training split only; evaluation uses the "
        "clean test labels), seeded by --seed: see rkdo.vision.noise")
    label_noise_kind: str = _option(
        "symmetric", "data",
        "symmetric (a uniformly drawn other class) or asymmetric (fashion-mnist's class pairs "
        "T-shirt/shirt, pullover/coat, sneaker/boot)", choices=NOISE_KINDS)
    crop_scale: float = _option(
        0.2, "data", "smallest area fraction of the random resized crop, in (0, 1]")
    jitter: float = _option(
        0.4, "data", "colour jitter strength j: brightness, contrast and saturation factors in "
        "[1 - j, 1 + j], hue shift up to j / 4 (the reference's 0.4)")
    image_size: int | None = _option(
        None, "data",
        "training resolution in pixels (default: 8 digits, 28 fashion-mnist, 32 CIFAR, "
        "64 STL-10)", at_least=1)
    encoder: str = _option(
        "small-cnn", "model",
        "resnet18 (ImageNet stem, the paper's), resnet18-cifar (3x3 stem, no max-pool) or "
        "small-cnn (fast on a CPU)", choices=ENCODERS)
    width: int = _option(
        16, "model", "small-cnn: channels of its first block (doubled in each of the next two, "
        "8 x width features); the other encoders ignore it", at_least=1)
    embedding_dim: int = _option(
        64, "model", "output dimension of the projection head (L2-normalised)", at_least=1)
    hidden_dim: int = _option(
        512, "model", "hidden width of the Linear-BN-ReLU-Linear projection head", at_least=1)
    method: str = _option(
        "rkdo", "loss",
        f"loss preset (see the methods below): {', '.join(METHOD_CHOICES)}",
        choices=METHOD_CHOICES)
    recursion: str = _option(
        "auto", "loss",
        "auto (the method's own), none (static I-Con), in-step (recursion inside each step, "
        "the reference notebooks'), temporal (a teacher field across steps) or "
        "temporal+in-step", choices=RECURSIONS)
    temperature: float = _option(0.5, "loss", "temperature tau of the learned cosine kernel")
    alpha: float = _option(
        0.5, "loss", "RKDO teacher update rate in [0, 1]: p(t) = (1-alpha) p(t-1) + alpha q(t-1)")
    depth: int = _option(3, "loss", "RKDO in-step recursion depth K >= 1")
    beta: float = _option(
        0.1, "loss", "RKDO temperature decay in [0, 1): tau_t = tau (1 - beta t / K)")
    debias: float | None = _option(
        None, "loss", "uniform leak of the target in [0, 1) (default: the method's, 0.2 for icon)")
    detach_teacher: bool = _option(
        False, "loss", "stop the gradient through the RKDO teacher (the reference lets it flow)")
    ema_momentum: float = _option(
        0.99, "optimisation", "supcon-ema: momentum m of the teacher network, theta' <- m theta' + "
        "(1 - m) theta")
    form: str | None = _option(
        None, "loss", "pair (view 1 vs view 2, the reference's), symmetric (NT-Xent 2B x 2B) or "
        "single (default: the method's)")
    perplexity: float = _option(
        30.0, "loss", "perplexity of the Gaussian input kernel (sne, tsne, kmeans)")
    n_clusters: int | None = _option(
        None, "loss", "number of prototypes of the cluster kernel (cluster, kmeans; default 10)",
        at_least=2)
    # schedules over the run's steps (the temporal teacher's alpha like the learning rate)
    alpha_schedule: str = _option(
        "constant", "optimisation", "temporal recursion: constant, linear, cosine or step decay "
        "of alpha", choices=ALPHA_SCHEDULES)
    alpha_final: float = _option(
        0.0, "optimisation", "temporal recursion: alpha at the end of training")
    epochs: int = _option(
        10, "optimisation", "number of epochs (an epoch is a pass over the training split, or "
        "--steps-per-epoch batches)", at_least=1)
    steps_per_epoch: int | None = _option(
        None, "optimisation", "cap on batches per epoch (the paper's 'epoch' is 10 batches)",
        at_least=1)
    batch_size: int = _option(
        64, "optimisation", "global batch size (split over processes under torchrun)", at_least=1)
    optimizer: str = _option("adam", "optimisation", "adam or sgd", choices=OPTIMIZERS)
    lr: float = _option(1e-3, "optimisation", "learning rate (> 0)")
    weight_decay: float = _option(1e-5, "optimisation", "weight decay")
    momentum: float = _option(0.9, "optimisation", "SGD momentum")
    lr_schedule: str = _option(
        "none", "optimisation", "none, cosine (annealed to 0 over the run) or warmup-cosine "
        "(linear warm-up over --warmup-steps, then cosine to 0)", choices=SCHEDULES)
    warmup_steps: int = _option(
        0, "optimisation", "warmup-cosine: steps of linear warm-up from lr / warmup-steps to lr",
        at_least=0)
    seed: int = _option(0, "optimisation", "random seed (model init, data order, augmentations)")
    device: str = _option("auto", "execution", "auto, cpu or cuda[:N]", execution=True)
    precision: str = _option("fp32", "execution", "fp32 or bf16 (autocast)", choices=PRECISIONS)
    channels_last: bool = _option(False, "execution", "use the channels_last memory format")
    views_forward: str = _option(
        "joint", "execution",
        "joint: both views in one forward pass of 2B images (BatchNorm normalises over both "
        "views together, as SimCLR's code does; faster); separate: one forward per view (each "
        "view's own batch statistics, what runs before this option did)",
        choices=VIEWS_FORWARD, before="separate")
    compile: bool = _option(
        False, "execution", "torch.compile the model's forward and backward (slow first steps)")
    eval_protocol: str = _option(
        "full", "evaluation", "full (whole official test split), paper (the reference's ~700 "
        "images), both, noisy (label-noise study: clean linear probe on --probe-train-size "
        "training images, k-NN with the noisy training labels, a classifier head's accuracy; "
        "rkdo.evaluation.noisy) or none", choices=EVAL_PROTOCOLS)
    eval_epochs: list[int] = _option(
        [], "evaluation", "also evaluate after these epochs, e.g. --eval-epochs 1 2 5")
    eval_projection: bool = _option(
        False, "evaluation", "evaluate on the projection head's output instead of backbone "
        "features")
    probe_train_size: int | None = _option(
        None, "evaluation", "subsample the training split for the linear probe (bounds eval "
        "time)", at_least=1)
    checkpoint_every: int = _option(
        0, "recording", "write a checkpoint every N steps (0: at evaluations and at the end)",
        execution=True, at_least=0)
    log_every: int = _option(
        10, "recording", "log a metrics line every N steps", execution=True, at_least=1)
    record_field: int = _option(
        0, "recording", f"record teacher/student fields over N >= {MIN_POINTS} probe anchors "
        "for `rkdo viz` (0: off)", at_least=0)
    record_every: int = _option(10, "recording", "record the fields every N steps", at_least=1)
    tensorboard: bool = _option(
        False, "recording", "also log to TensorBoard (pip install rkdo[tensorboard])",
        execution=True)
    csv: bool = _option(
        False, "recording", "also write metrics.csv (one row per metrics.jsonl record, one "
        "column per key), rewritten at every checkpoint", execution=True)
    wandb: bool = _option(
        False, "recording", "also log to Weights & Biases in offline mode, under DIR/wandb "
        "(pip install rkdo[wandb]; upload later with `wandb sync DIR/wandb/offline-run-*`)",
        execution=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A config from a ``config.json`` dict: missing keys take their defaults, unknown keys
        are refused."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; known keys: {sorted(known)}")
        for name, value in values.items():
            _check_type(name, str(known[name].type), value)
        earlier = {name: spec.metadata["before"] for name, spec in known.items()
                   if spec.metadata["before"] is not None and name not in values}
        return cls(**{**earlier, **values})

    def resolved_recursion(self) -> str:
        """The recursion actually used: ``auto`` is the method's own (in-step for ``rkdo``)."""
        if self.recursion != "auto":
            return self.recursion
        method = METHODS.get(self.method)
        return "in-step" if method is not None and method.recursive else "none"

    def resolved_image_size(self) -> int:
        """The training resolution: ``image_size``, or the dataset's own (8 px digits, ...)."""
        return self.image_size or default_image_size(self.dataset)

    def method_entry(self) -> Method:
        """The registry entry of ``method`` (:data:`rkdo.method_table.METHODS`)."""
        return METHODS[self.method]


EXECUTION_FIELDS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(TrainConfig) if f.metadata["execution"])
"""TrainConfig fields that say where/how a run executes, not what it computes: they may be
overridden on the command line and do not make a stored result stale."""

LOSS_FIELDS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(TrainConfig) if f.metadata["group"] == "loss")
"""TrainConfig fields that choose and parameterise the loss of one step (the schedules over
the run are optimisation fields)."""


def config_identity(values: dict[str, Any]) -> dict[str, Any]:
    """What a run computes: ``values`` normalised through :meth:`TrainConfig.from_dict` (missing
    keys take their defaults, so adding a field keeps old results), execution fields dropped."""
    normal = asdict(TrainConfig.from_dict(dict(values)))
    return {k: v for k, v in normal.items() if k not in EXECUTION_FIELDS}


_TYPE_CHECKS = {
    "int": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "float": ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
    "str": ("a string", lambda v: isinstance(v, str)),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "list[int]": ("a list of integers", lambda v: isinstance(v, list) and all(
        isinstance(e, int) and not isinstance(e, bool) for e in v)),
}


def _check_type(name: str, annotation: str, value: Any) -> None:
    """Refuse a stored value of the wrong JSON type (``"lr": "0.001"``, ``"seed": null``)."""
    optional = annotation.endswith(" | None")
    if value is None and optional:
        return
    what, ok = _TYPE_CHECKS[annotation.removesuffix(" | None")]
    if not ok(value):
        allowed = f"{what} or null" if optional else what
        raise ValueError(f"{name} must be {allowed}, got {value!r} ({type(value).__name__})")
