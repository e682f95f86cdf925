"""Benchmark grids: datasets x methods x training durations x seeds, each cell stored once.

A grid file (TOML) names the datasets, the methods with their hyper-parameters, the training
durations (epochs) and the seeds, plus settings shared by every run (see ``grids/*.toml``).
It expands into jobs:

    floor     (dataset, seed)            the untrained encoder, evaluated once: duration 0
    train     (dataset, method, seed)    ONE run of max(durations) epochs, evaluated after each
                                         duration (``eval_epochs``) instead of retraining from
                                         scratch for every duration as the paper did
    profile   (dataset)                  FLOPs and time per step (:mod:`rkdo.bench.flops`)

With a constant learning rate (the default) and per-epoch data order drawn from ``(seed, epoch)``,
the first ``d`` epochs of a longer run are the ``d``-epoch run, so reuse changes no number; it
only saves the retraining. A learning-rate schedule annealed over the whole run would break
that equivalence, so the grid refuses ``lr_schedule`` other than ``"none"``.

The store is a directory: ``grid.toml`` (the grid that created it), ``store.json`` (its hash),
``results.jsonl`` (one JSON line per finished job: config, metrics per duration, wall time,
versions, seed, grid hash; rewritten atomically after every job, so a kill at any moment leaves
either the old or the new file) and ``runs/`` (the training runs' directories). Rerunning skips
finished jobs; an interrupted training run resumes from its last checkpoint
(``train(resume=True)``: checkpoints are written at every evaluation and every
``checkpoint_every`` steps); a job that fails is recorded with its error and the grid goes on
(failed jobs are retried on the next run). A store created by a different grid is refused unless
``allow_grid_change`` is given, and even then only jobs whose settings are unchanged are reused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import platform
import re
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = [
    "GRID_DIR",
    "FLOOR",
    "Grid",
    "Job",
    "GridMismatchError",
    "BenchSummary",
    "shipped_grids",
    "load_grid",
    "parse_grid",
    "read_results",
    "load_results",
    "run_grid",
    "plan",
    "is_done",
    "versions",
]

GRID_DIR = Path(__file__).with_name("grids")
FLOOR = "untrained"
GRID_FILE = "grid.toml"
STORE_FILE = "store.json"
RESULTS_FILE = "results.jsonl"
RUNS_DIR = "runs"
LOCK_FILE = ".lock"

EXECUTION_FIELDS = ("data_root", "download", "device", "checkpoint_every", "log_every",
                    "tensorboard")
"""TrainConfig fields that say where/how a run executes, not what it computes: they may be
overridden on the command line and do not make a stored result stale."""

_RESERVED = ("dataset", "method", "seed", "epochs", "eval_epochs")
_TOP_LEVEL = ("name", "description", "seeds", "durations", "treatment", "baseline", "settings",
              "datasets", "methods", "profile", "profile_steps")


class GridMismatchError(ValueError):
    """The store was created by a different grid."""


# ----------------------------------------------------------------------------- grid files


@dataclass(frozen=True)
class MethodSpec:
    """One method of a grid: a label, TrainConfig overrides, and whether it may be skipped."""

    name: str
    options: dict[str, Any]
    optional: bool = False


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of a grid with its TrainConfig overrides (e.g. a smaller batch)."""

    dataset: str
    options: dict[str, Any]


@dataclass
class Grid:
    """A parsed grid file. ``text`` is the file as written; :attr:`hash` its parsed content."""

    name: str
    description: str
    seeds: list[int]
    durations: list[int]
    treatment: str
    baseline: str
    settings: dict[str, Any]
    datasets: list[DatasetSpec]
    methods: list[MethodSpec]
    profile: bool
    profile_steps: int
    text: str
    content: dict[str, Any] = field(repr=False)

    @property
    def hash(self) -> str:
        """sha256 (16 hex digits) of the parsed content: comments and layout do not count."""
        canonical = json.dumps(self.content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def method(self, name: str) -> MethodSpec:
        for spec in self.methods:
            if spec.name == name:
                return spec
        raise KeyError(name)


def shipped_grids() -> list[str]:
    """Names of the grids that ship with rkdo (``rkdo bench NAME``)."""
    return sorted(p.stem for p in GRID_DIR.glob("*.toml"))


def _toml_loads(text: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib
    return tomllib.loads(text)


def load_grid(path_or_name: str | os.PathLike[str]) -> Grid:
    """Read a grid file, or a shipped grid by name (``"fashion-cpu"``)."""
    path = Path(path_or_name)
    if not path.exists():
        shipped = GRID_DIR / f"{path.name.removesuffix('.toml')}.toml"
        if path.parent == Path(".") and shipped.exists():
            path = shipped
        else:
            raise FileNotFoundError(
                f"grid {str(path_or_name)!r} not found: give a TOML file or one of the shipped "
                f"grids: {', '.join(shipped_grids())}"
            )
    try:
        return parse_grid(path.read_text(), source=str(path))
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def _int_list(content: dict[str, Any], key: str) -> list[int]:
    values = content.get(key)
    if (not isinstance(values, list) or not values
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in values)):
        raise ValueError(f"'{key}' must be a non-empty list of integers, got {values!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"'{key}' has duplicates: {values}")
    return list(values)


def _check_options(options: dict[str, Any], where: str, reserved: Sequence[str]) -> None:
    from rkdo.training.loop import TrainConfig

    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(
            f"{where}: unknown setting(s) {unknown}; settings are TrainConfig fields: "
            f"{', '.join(sorted(known - set(_RESERVED)))}"
        )
    clash = sorted(set(options) & set(reserved))
    if clash:
        raise ValueError(f"{where}: {clash} are set by the grid itself and cannot be given here")


def parse_grid(text: str, source: str = "<grid>") -> Grid:
    """Parse and check a grid's TOML text (every error names the key and what is allowed)."""
    content = _toml_loads(text)
    unknown = sorted(set(content) - set(_TOP_LEVEL))
    if unknown:
        raise ValueError(f"unknown top-level key(s) {unknown}; allowed: {', '.join(_TOP_LEVEL)}")
    name = content.get("name") or Path(source).stem
    seeds = _int_list(content, "seeds")
    durations = _int_list(content, "durations")
    if any(d < 1 for d in durations):
        raise ValueError(f"'durations' are training epochs and must be >= 1, got {durations}")
    durations = sorted(durations)
    settings = dict(content.get("settings", {}))
    _check_options(settings, "[settings]", _RESERVED)
    if settings.get("lr_schedule", "none") != "none":
        raise ValueError(
            "[settings] lr_schedule must be 'none' in a grid: every duration is read from one "
            "run, which equals a shorter run only with a constant learning rate"
        )

    datasets = []
    for index, entry in enumerate(content.get("datasets", [])):
        entry = dict(entry)
        if "dataset" not in entry:
            raise ValueError(f"[[datasets]] entry {index + 1} needs dataset = \"NAME\"")
        dataset = entry.pop("dataset")
        _check_options(entry, f"[[datasets]] {dataset}", _RESERVED)
        datasets.append(DatasetSpec(dataset, entry))
    if not datasets:
        raise ValueError("the grid needs at least one [[datasets]] entry")
    if len({d.dataset for d in datasets}) != len(datasets):
        raise ValueError("[[datasets]] entries must name different datasets")

    methods = []
    for index, entry in enumerate(content.get("methods", [])):
        entry = dict(entry)
        label = entry.pop("name", None)
        if not isinstance(label, str) or not re.fullmatch(r"[A-Za-z0-9._-]+", label):
            raise ValueError(
                f"[[methods]] entry {index + 1} needs name = \"LABEL\" (letters, digits, . _ -)"
            )
        if label in (FLOOR, "profile"):
            raise ValueError(f"method name {label!r} is reserved")
        optional = bool(entry.pop("optional", False))
        entry.setdefault("method", label)
        _check_options(entry, f"[[methods]] {label}", [r for r in _RESERVED if r != "method"])
        methods.append(MethodSpec(label, entry, optional))
    if not methods:
        raise ValueError("the grid needs at least one [[methods]] entry")
    labels = [m.name for m in methods]
    if len(set(labels)) != len(labels):
        raise ValueError(f"[[methods]] names must be unique, got {labels}")
    treatment = content.get("treatment", labels[0])
    baseline = content.get("baseline", labels[1] if len(labels) > 1 else labels[0])
    for role, value in (("treatment", treatment), ("baseline", baseline)):
        if value not in labels:
            raise ValueError(f"{role} {value!r} is not one of the grid's methods: {labels}")
    profile_steps = content.get("profile_steps", 5)
    if not isinstance(profile_steps, int) or profile_steps < 0:
        raise ValueError(f"profile_steps must be an integer >= 0, got {profile_steps!r}")
    return Grid(
        name=name, description=content.get("description", ""), seeds=seeds,
        durations=durations, treatment=treatment, baseline=baseline, settings=settings,
        datasets=datasets, methods=methods, profile=bool(content.get("profile", True)),
        profile_steps=profile_steps, text=text, content=content,
    )


# ----------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class Job:
    """One unit of work and of storage.

    ``kind`` is ``"floor"`` (untrained encoder, duration 0), ``"train"`` (one run evaluated at
    every duration) or ``"profile"``; ``config`` is a TrainConfig dict (train/floor) or the
    profile's parameters.
    """

    key: str
    kind: str
    dataset: str
    method: str
    seed: int | None
    config: dict[str, Any]
    durations: tuple[int, ...]
    skip_reason: str = ""

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", self.key)


def _identity(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in EXECUTION_FIELDS}


def _train_config(grid: Grid, dataset: DatasetSpec, method: MethodSpec, seed: int,
                  overrides: dict[str, Any]) -> dict[str, Any]:
    from rkdo.training.loop import TrainConfig

    values = {**grid.settings, **dataset.options, **method.options, **overrides,
              "dataset": dataset.dataset, "seed": seed, "epochs": max(grid.durations),
              "eval_epochs": [d for d in grid.durations if d != max(grid.durations)]}
    return dataclasses.asdict(TrainConfig.from_dict(values))


def _profile_variants(grid: Grid, dataset: DatasetSpec, overrides: dict[str, Any],
                      skip: dict[str, str]) -> list[list[Any]]:
    """``[label, loss options]`` of each runnable method of the grid, exactly as its runs are
    configured on ``dataset``; the treatment also at depth 1 when it recurses deeper."""
    from rkdo.training.loop import TrainConfig

    keys = ("method", "recursion", "temperature", "alpha", "depth", "beta", "debias",
            "detach_teacher", "form", "perplexity", "n_clusters")
    variants: list[list[Any]] = []
    for spec in grid.methods:
        if spec.name in skip:
            continue
        config = TrainConfig.from_dict(
            _train_config(grid, dataset, spec, grid.seeds[0], overrides))
        options = {k: getattr(config, k) for k in keys}
        if config.resolved_recursion() == "in-step":
            if spec.name == grid.treatment and config.depth != 1:
                variants.append([f"{spec.name} depth 1", {**options, "depth": 1}])
            variants.append([f"{spec.name} depth {config.depth}", options])
        else:
            variants.append([spec.name, options])
    return variants


def plan(grid: Grid, overrides: dict[str, Any] | None = None, *, validate: bool = True
         ) -> list[Job]:
    """All jobs of ``grid``, seed-major (one full seed first, so partial results are usable).

    Every config is checked with :func:`rkdo.training.loop.validate` first: a method marked
    ``optional = true`` that cannot run here (e.g. lightly not installed) gets jobs with a
    ``skip_reason``; any other invalid setting raises ``ValueError`` before anything runs.
    ``validate=False`` skips these checks (reading a store back needs none of them).
    """
    from rkdo.training.loop import TrainConfig
    from rkdo.training.loop import validate as check

    overrides = dict(overrides or {})
    bad = sorted(set(overrides) - set(EXECUTION_FIELDS))
    if bad:
        raise ValueError(f"only {', '.join(EXECUTION_FIELDS)} may be overridden, not {bad}")
    skip: dict[str, str] = {}
    for spec in grid.methods if validate else ():
        for dataset in grid.datasets:
            config = _train_config(grid, dataset, spec, grid.seeds[0], overrides)
            try:
                check(TrainConfig.from_dict(config))
            except ValueError as error:
                if not spec.optional:
                    raise ValueError(
                        f"method {spec.name!r} on {dataset.dataset}: {error}") from None
                skip[spec.name] = f"optional method skipped: {error}"
    floor_method = grid.method(grid.baseline)
    durations = tuple(grid.durations)
    jobs = []
    for seed in grid.seeds:
        for dataset in grid.datasets:
            floor = _train_config(grid, dataset, floor_method, seed, overrides)
            if floor["eval_protocol"] != "none":  # nothing to evaluate otherwise
                jobs.append(Job(f"{dataset.dataset}/{FLOOR}/seed{seed}", "floor",
                                dataset.dataset, FLOOR, seed, floor, (0,)))
            for spec in grid.methods:
                jobs.append(Job(
                    f"{dataset.dataset}/{spec.name}/seed{seed}", "train", dataset.dataset,
                    spec.name, seed, _train_config(grid, dataset, spec, seed, overrides),
                    durations, skip.get(spec.name, ""),
                ))
    if grid.profile:
        for dataset in grid.datasets:
            base = _train_config(grid, dataset, floor_method, grid.seeds[0], overrides)
            config = {k: base[k] for k in ("dataset", "encoder", "batch_size", "image_size",
                                            "embedding_dim", "hidden_dim", "data_root",
                                            "download", "device")}
            config["variants"] = _profile_variants(grid, dataset, overrides, skip)
            config["steps"] = grid.profile_steps
            jobs.append(Job(f"{dataset.dataset}/profile", "profile", dataset.dataset,
                            "profile", None, config, ()))
    return jobs


# ----------------------------------------------------------------------------- the store


def versions(method_names: Sequence[str] = ()) -> dict[str, str]:
    """Versions of Python and the libraries a result depends on."""
    import numpy
    import scipy
    import sklearn
    import torch

    import rkdo

    found = {
        "python": platform.python_version(),
        "rkdo": rkdo.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "platform": platform.platform(),
    }
    if any(name.startswith("lightly") for name in method_names):
        with contextlib.suppress(ImportError):
            import lightly

            found["lightly"] = lightly.__version__
    return found


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_results(out: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The store's records by job key (the last record of a key wins)."""
    path = Path(out) / RESULTS_FILE
    records: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                records[record["key"]] = record
    return records


def _write_results(out: Path, records: dict[str, dict[str, Any]]) -> None:
    _write_atomic(out / RESULTS_FILE,
                  "".join(json.dumps(r, sort_keys=True) + "\n" for r in records.values()))


def is_done(job: Job, record: dict[str, Any] | None) -> bool:
    """Whether ``record`` is a finished result of ``job`` with its current settings."""
    if record is None or record.get("status") not in ("ok", "skipped"):
        return False
    if record["status"] == "skipped" and not job.skip_reason:
        return False  # the optional method can run now
    return _identity(record["config"]) == _identity(job.config)


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    handle = open(out / LOCK_FILE, "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ValueError(f"another `rkdo bench` is writing to {out}; wait for it to end") from None
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _open_store(out: Path, grid: Grid, allow_grid_change: bool) -> None:
    store_path = out / STORE_FILE
    if store_path.exists():
        store = json.loads(store_path.read_text())
        if store["grid_hash"] == grid.hash:
            return
        if not allow_grid_change:
            old = parse_grid((out / GRID_FILE).read_text(), store.get("grid_name", "old"))
            changed = sorted(k for k in set(old.content) | set(grid.content)
                             if old.content.get(k) != grid.content.get(k))
            raise GridMismatchError(
                f"{out} holds results of grid {store.get('grid_name')!r} (hash "
                f"{store['grid_hash']}); this grid ({grid.name!r}, hash {grid.hash}) differs in: "
                f"{', '.join(changed)}. Use another --out, or pass --allow-grid-change to extend "
                "the store (results whose settings are unchanged are kept, the rest rerun)"
            )
    elif (out / RESULTS_FILE).exists():
        raise GridMismatchError(f"{out} has {RESULTS_FILE} but no {STORE_FILE}: not a bench store")
    _write_atomic(out / GRID_FILE, grid.text)
    _write_atomic(store_path, json.dumps({
        "grid_name": grid.name, "grid_hash": grid.hash,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }, indent=2) + "\n")


# ----------------------------------------------------------------------------- running jobs


def _metric_items(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("kind", "epoch", "step")}


def _collect_run(run_dir: Path, durations: Sequence[int]) -> dict[str, Any]:
    """Per-duration metrics of a finished run from its ``metrics.jsonl`` and ``eval.json``."""
    from rkdo.training.loop import EVAL_FILE, METRICS_FILE

    evals: dict[int, dict[str, Any]] = {}
    epoch_loss: dict[int, float] = {}
    speeds = []
    for line in (run_dir / METRICS_FILE).read_text().splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        kind = entry.get("kind")
        if kind == "eval":
            evals[int(entry["epoch"])] = _metric_items(entry)
        elif kind == "epoch":
            epoch_loss[int(entry["epoch"])] = float(entry["mean_loss"])
        elif "images_per_s" in entry:
            speeds.append(float(entry["images_per_s"]))
    final = json.loads((run_dir / EVAL_FILE).read_text())
    evals[int(final["epoch"])] = _metric_items(final)
    result: dict[str, Any] = {}
    for duration in durations:
        if duration not in evals:
            raise RuntimeError(f"{run_dir} has no evaluation after epoch {duration}")
        result[str(duration)] = {**evals[duration], "train_loss": epoch_loss.get(duration)}
    speeds.sort()
    return {"durations": result,
            "images_per_s": speeds[len(speeds) // 2] if speeds else None}


def _run_train(job: Job, out: Path) -> dict[str, Any]:
    from rkdo.training.loop import CHECKPOINT_FILE, CONFIG_FILE, EVAL_FILE, TrainConfig, train

    run_dir = out / RUNS_DIR / job.slug
    config = TrainConfig.from_dict(job.config)
    saved = run_dir / CONFIG_FILE
    same = saved.exists() and _identity(json.loads(saved.read_text())) == _identity(job.config)
    resumed = False
    if same and (run_dir / EVAL_FILE).exists():
        resumed = True  # training had finished; only the store write was lost
    elif same and (run_dir / CHECKPOINT_FILE).exists():
        train(config, run_dir, resume=True, progress=False)
        resumed = True
    else:
        train(config, run_dir, overwrite=True, progress=False)
    return {**_collect_run(run_dir, job.durations), "resumed": resumed,
            "run_dir": str(run_dir.relative_to(out))}


def _run_floor(job: Job) -> dict[str, Any]:
    from rkdo.training.loop import TrainConfig, evaluate_initial

    config = TrainConfig.from_dict(job.config)
    device = "cuda" if config.device == "auto" and _cuda() else (
        "cpu" if config.device == "auto" else config.device)
    return {"durations": {"0": evaluate_initial(config, device=device)}}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _run_profile(job: Job) -> dict[str, Any]:
    from rkdo.vision import data as data_module
    from rkdo.bench.flops import profile

    config = job.config
    data = data_module.load(config["dataset"], config["data_root"], config["download"])
    image_size = config["image_size"] or data_module.default_image_size(config["dataset"])
    device = config["device"]
    if device == "auto":
        device = "cuda" if _cuda() else "cpu"
    rows = profile(
        config["encoder"], config["batch_size"], image_size, data.channels,
        variants=[(label, dict(options)) for label, options in config["variants"]],
        embedding_dim=config["embedding_dim"], hidden_dim=config["hidden_dim"],
        steps=config["steps"], warmup=min(2, config["steps"]), device=device,
    )
    return {"profile": [row.to_dict() for row in rows]}


def _run_job(job: Job, out: Path) -> dict[str, Any]:
    if job.kind == "train":
        return _run_train(job, out)
    if job.kind == "floor":
        return _run_floor(job)
    return _run_profile(job)


@dataclass
class BenchSummary:
    """What one ``run_grid`` call did."""

    out: Path
    total: int
    done_before: int
    ran: int
    failed: list[str]
    skipped: list[str]
    seconds: float
    report: Path | None = None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _log_session(out: Path, session: dict[str, Any], replace: bool = False) -> dict[str, Any]:
    """Append (or update the last) entry of ``store.json``'s list of bench sessions."""
    path = out / STORE_FILE
    store = json.loads(path.read_text())
    sessions = store.setdefault("sessions", [])
    if replace and sessions:
        sessions[-1] = session
    else:
        sessions.append(session)
    _write_atomic(path, json.dumps(store, indent=2) + "\n")
    return session


def _execute(job: Job, out: Path) -> dict[str, Any]:
    """Run one job and return what its record needs; never raises for a failing cell."""
    import torch

    outcome: dict[str, Any] = {"started_at": _now(), "threads": torch.get_num_threads()}
    start = time.perf_counter()
    if job.skip_reason:
        outcome.update(status="skipped", error=job.skip_reason)
    else:
        try:
            outcome.update(_run_job(job, out), status="ok")
        except Exception as error:  # a failing cell must not stop the grid
            outcome.update(status="error", error=f"{type(error).__name__}: {error}",
                           traceback=traceback.format_exc())
    outcome["wall_seconds"] = time.perf_counter() - start
    outcome["finished_at"] = _now()
    return outcome


def _worker_init(threads: int | None) -> None:
    """Worker set-up: its torch threads, and (Linux) die with the parent, so that a killed
    ``rkdo bench`` leaves no worker writing into a run that the next ``rkdo bench`` resumes."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(1)


def run_grid(
    grid: Grid,
    out: str | os.PathLike[str],
    *,
    allow_grid_change: bool = False,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    report: bool = True,
    threads: int | None = None,
    workers: int = 1,
    command: str | None = None,
) -> BenchSummary:
    """Run every job of ``grid`` not yet in the store at ``out``; write the report at the end.

    Args:
        grid: the parsed grid (:func:`load_grid`).
        out: the store directory (created if needed).
        allow_grid_change: use a store created by a different grid (unchanged jobs are kept).
        overrides: execution settings for every run (``data_root``, ``download``, ``device``,
            ``checkpoint_every``, ``log_every``): not part of a result's identity.
        progress: show jobs done / total and an estimate of the time left (tqdm).
        report: write ``report.md`` and figures (:mod:`rkdo.bench.report.build`) when done.
        threads: ``torch.set_num_threads`` in every process that runs jobs (default: torch's).
        workers: jobs run at once, each in its own process (1: in this process). Only this
            process writes the store; results do not depend on the number of workers.
        command: the command line, recorded with every result.
    """
    out = Path(out)
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    jobs = plan(grid, overrides)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with _locked(out):
        _open_store(out, grid, allow_grid_change)
        records = read_results(out)
        pending = [job for job in jobs if not is_done(job, records.get(job.key))]
        done_before = len(jobs) - len(pending)
        method_names = [str(m.options.get("method", m.name)) for m in grid.methods]
        environment = versions(method_names)
        session = _log_session(out, {"started": _now(), "command": command,
                                     "workers": workers, "threads": threads,
                                     "pending": len(pending)})
        failed: list[str] = []
        skipped: list[str] = []
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(jobs), initial=done_before, unit="cell", smoothing=0.0,
                       dynamic_ncols=True, desc=f"bench {grid.name}")

        def store(job: Job, outcome: dict[str, Any]) -> None:
            record = {
                "key": job.key, "kind": job.kind, "dataset": job.dataset, "method": job.method,
                "seed": job.seed, "config": job.config, "grid_name": grid.name,
                "grid_hash": grid.hash, "versions": environment, "command": command,
                "workers": workers, **outcome,
            }
            if record["status"] == "error":
                failed.append(job.key)
                message = f"cell {job.key} failed: {record['error']}"
                if bar is not None:
                    bar.write(message)
                else:
                    print(message, file=sys.stderr)
            elif record["status"] == "skipped":
                skipped.append(job.key)
            records[job.key] = record
            _write_results(out, records)
            if bar is not None:
                bar.update(1)

        if workers == 1 or len(pending) <= 1:
            _worker_init_threads_only(threads)
            for job in pending:
                if bar is not None:
                    bar.set_postfix_str(job.key)
                store(job, _execute(job, out))
        else:
            import multiprocessing
            from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init,
                                     initargs=(threads,)) as pool:
                running = {pool.submit(_execute, job, out): job for job in pending}
                try:
                    while running:
                        if bar is not None:
                            bar.set_postfix_str(f"{len(running)} jobs left, {workers} workers")
                        finished, _ = wait(running, return_when=FIRST_COMPLETED)
                        for future in finished:
                            store(running.pop(future), future.result())
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
        if bar is not None:
            bar.close()
        _log_session(out, {**session, "finished": _now(),
                           "seconds": time.perf_counter() - started}, replace=True)
    summary = BenchSummary(out, len(jobs), done_before, len(pending), failed, skipped,
                           time.perf_counter() - started)
    if report:
        from rkdo.bench.report.build import write_report

        summary.report = write_report(out)
    return summary


def _worker_init_threads_only(threads: int | None) -> None:
    import torch

    if threads is not None:
        torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- reading back


@dataclass
class Results:
    """A store read back: its grid, the records of its current jobs, and flat rows.

    ``rows`` has one dict per (dataset, method, duration, seed) with the metrics as keys; the
    untrained encoder appears as method :data:`FLOOR` at duration 0.
    """

    out: Path
    grid: Grid
    jobs: list[Job]
    records: dict[str, dict[str, Any]]
    rows: list[dict[str, Any]]
    failed: list[dict[str, Any]]
    skipped: list[dict[str, Any]]
    profiles: dict[str, list[dict[str, Any]]]
    sessions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def methods(self) -> list[str]:
        present = {row["method"] for row in self.rows}
        return [m.name for m in self.grid.methods if m.name in present]


def load_results(out: str | os.PathLike[str]) -> Results:
    """Read a store: only results of the store's grid whose settings match it are used."""
    out = Path(out)
    if not (out / STORE_FILE).exists() or not (out / GRID_FILE).exists():
        raise ValueError(f"{out} is not a bench store (no {STORE_FILE} / {GRID_FILE}); "
                         "create one with `rkdo bench GRID --out DIR`")
    grid = parse_grid((out / GRID_FILE).read_text(), str(out / GRID_FILE))
    records = read_results(out)
    # the report reads what is stored: which data root or device ran it does not matter
    jobs = plan(grid, validate=False)
    rows, failed, skipped, profiles, used = [], [], [], {}, {}
    for job in jobs:
        record = records.get(job.key)
        if record is None:
            continue
        if record.get("status") == "error":
            failed.append(record)
            continue
        if record.get("status") == "skipped":
            skipped.append(record)
            continue
        if job.kind != "profile" and _identity(record["config"]) != _identity(job.config):
            continue
        used[job.key] = record
        if job.kind == "profile":
            profiles[job.dataset] = record["profile"]
            continue
        for duration, metrics in record["durations"].items():
            rows.append({"dataset": job.dataset, "method": job.method,
                         "duration": int(duration), "seed": job.seed, **metrics})
    sessions = json.loads((out / STORE_FILE).read_text()).get("sessions", [])
    return Results(out, grid, jobs, used, rows, failed, skipped, profiles, sessions)
