"""Planning: a grid expands into jobs, each one unit of work and of storage.

    floor     (dataset, seed)            the untrained encoder, evaluated once: duration 0
    pixels    (dataset, seed)            the raw pixels as features, the same way: duration 0
    train     (dataset, method, seed)    ONE run of max(durations) epochs, evaluated after each
                                         duration (``eval_epochs``) instead of retraining from
                                         scratch for every duration as the paper did
    profile   (dataset)                  FLOPs and time per step (:mod:`rkdo.bench.flops`)

A cell's TrainConfig is, later keys winning, ``settings < dataset options < method options <
execution overrides < {dataset, seed, epochs = max(durations), eval_epochs = the others}``.
With a constant learning rate and per-epoch data order drawn from ``(seed, epoch)``, the first
``d`` epochs of the longer run are the ``d``-epoch run, so reuse changes no number.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rkdo.bench.grid import FLOOR, PIXELS, DatasetSpec, Grid, MethodSpec
from rkdo.training import EXECUTION_FIELDS, LOSS_FIELDS, TrainConfig
from rkdo.training import validate as validate_config
from rkdo.vision import data as data_module

__all__ = ["Job", "plan", "train_config", "check_data", "PROFILE_FIELDS"]

PROFILE_FIELDS = ("dataset", "encoder", "batch_size", "image_size", "embedding_dim",
                  "hidden_dim", "data_root", "download", "device")
"""The TrainConfig fields a profile job takes from its dataset's runs."""


@dataclass(frozen=True)
class Job:
    """One unit of work and of storage.

    ``kind`` is ``"floor"`` (untrained encoder, duration 0), ``"pixels"`` (raw pixels as
    features, duration 0), ``"train"`` (one run evaluated at every duration) or ``"profile"``;
    ``config`` is a TrainConfig dict (train / floors) or the profile's parameters.
    """

    key: str
    kind: str
    dataset: str
    method: str
    seed: int | None
    config: dict[str, Any]
    durations: tuple[int, ...]
    skip_reason: str = ""
    resources: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)
    """What the cell asks of Ray / Slurm (the grid's ``resources``); not part of its identity."""
    settings: TrainConfig | None = dataclasses.field(default=None, compare=False, repr=False)
    """``config`` parsed, once, when the job is made (a profile job: its dataset's baseline
    cell, whose encoder and batch it profiles; ``None`` if it was not given)."""

    def __post_init__(self) -> None:
        if self.settings is None and self.kind != "profile":
            object.__setattr__(self, "settings", TrainConfig.from_dict(self.config))

    @property
    def train_config(self) -> TrainConfig:
        """The job's :class:`TrainConfig` (for a profile job, its baseline cell's)."""
        if self.settings is None:
            raise ValueError(f"job {self.key} was made without a TrainConfig")
        return self.settings

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", self.key)


def train_config(grid: Grid, dataset: DatasetSpec, method: MethodSpec, seed: int,
                 overrides: dict[str, Any]) -> TrainConfig:
    """The TrainConfig of one (dataset, method, seed) cell (parsed here, once)."""
    values = {**grid.settings, **dataset.options, **method.options, **overrides,
              "dataset": dataset.dataset, "seed": seed, "epochs": max(grid.durations),
              "eval_epochs": [d for d in grid.durations if d != max(grid.durations)]}
    return TrainConfig.from_dict(values)


def _cell(key: str, kind: str, dataset: DatasetSpec, method: str, seed: int,
          config: TrainConfig, durations: tuple[int, ...], skip_reason: str,
          resources: dict[str, Any]) -> Job:
    """A train or floor job whose config is already parsed."""
    return Job(key, kind, dataset.dataset, method, seed, dataclasses.asdict(config), durations,
               skip_reason, resources, settings=config)


def _profile_variants(grid: Grid, dataset: DatasetSpec, overrides: dict[str, Any],
                      skip: dict[str, str]) -> list[list[Any]]:
    """``[label, loss options]`` of each runnable method of the grid, exactly as its runs are
    configured on ``dataset``; the treatment also at depth 1 when it recurses deeper."""
    variants: list[list[Any]] = []
    for spec in grid.methods:
        if spec.name in skip:
            continue
        config = train_config(grid, dataset, spec, grid.seeds[0], overrides)
        options = {k: getattr(config, k) for k in LOSS_FIELDS}
        if config.resolved_recursion() == "in-step":
            if spec.name == grid.treatment and config.depth != 1:
                variants.append([f"{spec.name} depth 1", {**options, "depth": 1}])
            variants.append([f"{spec.name} depth {config.depth}", options])
        else:
            variants.append([spec.name, options])
    return variants


def _skipped_methods(grid: Grid, overrides: dict[str, Any]) -> dict[str, str]:
    """``{method: reason}`` for optional methods that cannot run here; raise for the others."""
    skip: dict[str, str] = {}
    for spec in grid.methods:
        for dataset in grid.datasets:
            config = train_config(grid, dataset, spec, grid.seeds[0], overrides)
            try:
                validate_config(config)
            except ValueError as error:
                if not spec.optional:
                    raise ValueError(
                        f"method {spec.name!r} on {dataset.dataset}: {error}") from None
                skip[spec.name] = f"optional method skipped: {error}"
    return skip


def _profile_job(grid: Grid, dataset: DatasetSpec, overrides: dict[str, Any],
                 skip: dict[str, str]) -> Job:
    base = train_config(grid, dataset, grid.method(grid.baseline), grid.seeds[0], overrides)
    config: dict[str, Any] = {k: getattr(base, k) for k in PROFILE_FIELDS}
    config["variants"] = _profile_variants(grid, dataset, overrides, skip)
    config["steps"] = grid.profile_steps
    return Job(f"{dataset.dataset}/profile", "profile", dataset.dataset, "profile", None,
               config, (), resources={**grid.resources, **dataset.resources}, settings=base)


def plan(grid: Grid, overrides: dict[str, Any] | None = None, *, validate: bool = True
         ) -> list[Job]:
    """All jobs of ``grid``, seed-major (one full seed first, so partial results are usable).

    Every config is checked with :func:`rkdo.training.validate` first: a method marked
    ``optional = true`` that cannot run here (e.g. lightly not installed) gets jobs with a
    ``skip_reason``; any other invalid setting raises ``ValueError`` before anything runs.
    ``validate=False`` skips these checks (reading a store back needs none of them).
    """
    overrides = dict(overrides or {})
    bad = sorted(set(overrides) - set(EXECUTION_FIELDS))
    if bad:
        raise ValueError(f"only {', '.join(EXECUTION_FIELDS)} may be overridden, not {bad}")
    skip = _skipped_methods(grid, overrides) if validate else {}
    floor_method = grid.method(grid.baseline)
    durations = tuple(grid.durations)
    jobs = []
    for seed in grid.seeds:
        for dataset in grid.datasets:
            floor = train_config(grid, dataset, floor_method, seed, overrides)
            resources = {**grid.resources, **dataset.resources}
            if floor.eval_protocol != "none":  # nothing to evaluate otherwise
                jobs += [_cell(f"{dataset.dataset}/{name}/seed{seed}", kind, dataset, name, seed,
                               floor, (0,), "", resources)
                         for kind, name in (("floor", FLOOR), ("pixels", PIXELS))]
            for spec in grid.methods:
                jobs.append(_cell(
                    f"{dataset.dataset}/{spec.name}/seed{seed}", "train", dataset, spec.name,
                    seed, train_config(grid, dataset, spec, seed, overrides), durations,
                    skip.get(spec.name, ""), {**resources, **spec.resources}))
    if grid.profile:
        jobs += [_profile_job(grid, dataset, overrides, skip) for dataset in grid.datasets]
    return jobs


def check_data(jobs: list[Job]) -> None:
    """Refuse (``ValueError`` naming the grid's ``[[datasets]]`` entry) data that a runnable
    job could not load, before any job runs.

    Each distinct (dataset, data root, download) is loaded once, so that missing files are
    found (and downloads done, once) here rather than by every cell; an ``imagefolder:PATH``
    is only checked to exist (decoding every image twice would cost too much).
    """
    seen: set[tuple[str, str | None, bool]] = set()
    for job in jobs:
        source = (job.config["dataset"], job.config.get("data_root"),
                  bool(job.config.get("download")))
        if job.skip_reason or source in seen:
            continue
        seen.add(source)
        name, root, download = source
        try:
            if name.startswith("imagefolder:"):
                folder = Path(name.removeprefix("imagefolder:")).expanduser()
                if not folder.is_dir():
                    raise data_module.DataError(f"image folder {folder} does not exist")
            else:
                data_module.load(name, root, download)
        except data_module.DataError as error:
            raise ValueError(f"[[datasets]] {job.dataset}: {error}") from None
