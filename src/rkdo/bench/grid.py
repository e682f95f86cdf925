"""Grid files: the TOML that names a benchmark's datasets, methods, durations and seeds.

    name = "my-grid"                  description = "..."
    seeds = [0, 1, 2]                 durations = [1, 2, 5]     (epochs; one run each)
    treatment = "rkdo"                baseline = "icon"         (compared in the report)
    profile = true                    profile_steps = 5
    [settings]                        TrainConfig fields shared by every run
    [[datasets]]   dataset = "NAME"   plus that dataset's TrainConfig overrides
    [[methods]]    name = "LABEL"     plus method, its hyper-parameters, optional = true
    [resources]                       what each cell asks of Ray / Slurm: cpus, gpus,
                                      memory_gb, timeout_min; a dataset or method entry
                                      may add its own ``resources = {gpus = 4}``

The grid's identity is :attr:`Grid.hash`, the sha256 of its parsed content: comments, layout and
``resources`` (where a cell runs, not what it computes) do not count. Every error names the key
and what is allowed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rkdo._validation import check_int, check_positive
from rkdo.training import TrainConfig

__all__ = ["GRID_DIR", "FLOOR", "PIXELS", "MethodSpec", "DatasetSpec", "Grid", "shipped_grids",
           "load_grid", "parse_grid"]

GRID_DIR = Path(__file__).with_name("grids")
FLOOR = "untrained"
"""The method name of the untrained encoder (duration 0)."""
PIXELS = "raw-pixels"
"""The method name of the raw pixels as features (duration 0), the other floor."""

_RESERVED = ("dataset", "method", "seed", "epochs", "eval_epochs")
_TOP_LEVEL = ("name", "description", "seeds", "durations", "treatment", "baseline", "settings",
              "datasets", "methods", "profile", "profile_steps", "resources")
RESOURCES = {"cpus": 1, "gpus": 0, "timeout_min": 1, "memory_gb": None}
"""Resource keys a cell may request, with their least integer value (None: a number > 0)."""


@dataclass(frozen=True)
class MethodSpec:
    """One method of a grid: a label, TrainConfig overrides, and whether it may be skipped."""

    name: str
    options: dict[str, Any]
    optional: bool = False
    resources: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of a grid with its TrainConfig overrides (e.g. a smaller batch)."""

    dataset: str
    options: dict[str, Any]
    resources: dict[str, Any] = field(default_factory=dict)


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
    resources: dict[str, Any] = field(default_factory=dict)

    @property
    def hash(self) -> str:
        """sha256 (16 hex digits) of the parsed content: comments, layout and resources do
        not count."""
        canonical = json.dumps(_without_resources(self.content), sort_keys=True,
                               separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def method(self, name: str) -> MethodSpec:
        for spec in self.methods:
            if spec.name == name:
                return spec
        raise KeyError(name)


def _without_resources(content: dict[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in content.items() if k != "resources"}
    for table in ("datasets", "methods"):
        if isinstance(kept.get(table), list):
            kept[table] = [{k: v for k, v in entry.items() if k != "resources"}
                           if isinstance(entry, dict) else entry for entry in kept[table]]
    return kept


def _parse_resources(table: Any, where: str) -> dict[str, Any]:
    """Check a ``resources`` table: known keys, integer counts, a positive memory."""
    if not isinstance(table, dict):
        raise ValueError(f"{where} resources must be a table, got {table!r}")
    unknown = sorted(set(table) - set(RESOURCES))
    if unknown:
        raise ValueError(f"{where} resources: unknown key(s) {unknown}; allowed: "
                         f"{', '.join(RESOURCES)}")
    for key, low in RESOURCES.items():
        if key in table:
            if low is None:
                check_positive(f"{where} resources.{key}", table[key])
            else:
                check_int(f"{where} resources.{key}", table[key], low=low)
    return dict(table)


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
    types = {f.name: str(f.type) for f in dataclasses.fields(TrainConfig)}
    for key, value in options.items():
        if not _has_type(value, types[key]):
            raise ValueError(f"{where}: {key} must be {_TYPE_WORDS.get(types[key], types[key])}"
                             f", got {value!r} ({type(value).__name__})")


_TYPE_WORDS = {"int": "an integer", "int | None": "an integer", "float": "a number",
               "float | None": "a number", "str": "a string", "str | None": "a string",
               "bool": "true or false", "list[int]": "a list of integers"}


def _has_type(value: Any, annotation: str) -> bool:
    """Whether a TOML ``value`` fits a TrainConfig field annotated ``annotation`` (an
    annotation this check does not know is left to TrainConfig's own checks)."""
    checks = {
        "None": lambda v: v is None,
        "bool": lambda v: isinstance(v, bool),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
        "list[int]": lambda v: isinstance(v, list) and all(
            isinstance(x, int) and not isinstance(x, bool) for x in v),
    }
    parts = [part.strip() for part in annotation.split("|")]
    if any(part not in checks for part in parts):
        return True
    return any(checks[part](value) for part in parts)


def _parse_settings(content: dict[str, Any]) -> dict[str, Any]:
    settings = dict(content.get("settings", {}))
    _check_options(settings, "[settings]", _RESERVED)
    if settings.get("lr_schedule", "none") != "none":
        raise ValueError(
            "[settings] lr_schedule must be 'none' in a grid: every duration is read from one "
            "run, which equals a shorter run only with a constant learning rate"
        )
    return settings


def _parse_datasets(content: dict[str, Any]) -> list[DatasetSpec]:
    datasets = []
    for index, entry in enumerate(content.get("datasets", [])):
        entry = dict(entry)
        if "dataset" not in entry:
            raise ValueError(f"[[datasets]] entry {index + 1} needs dataset = \"NAME\"")
        dataset = entry.pop("dataset")
        resources = _parse_resources(entry.pop("resources", {}), f"[[datasets]] {dataset}")
        _check_options(entry, f"[[datasets]] {dataset}", _RESERVED)
        datasets.append(DatasetSpec(dataset, entry, resources))
    if not datasets:
        raise ValueError("the grid needs at least one [[datasets]] entry")
    if len({d.dataset for d in datasets}) != len(datasets):
        raise ValueError("[[datasets]] entries must name different datasets")
    return datasets


def _parse_methods(content: dict[str, Any]) -> list[MethodSpec]:
    methods = []
    for index, entry in enumerate(content.get("methods", [])):
        entry = dict(entry)
        label = entry.pop("name", None)
        if not isinstance(label, str) or not re.fullmatch(r"[A-Za-z0-9._-]+", label):
            raise ValueError(
                f"[[methods]] entry {index + 1} needs name = \"LABEL\" (letters, digits, . _ -)"
            )
        if label in (FLOOR, PIXELS, "profile"):
            raise ValueError(f"method name {label!r} is reserved")
        optional = entry.pop("optional", False)
        resources = _parse_resources(entry.pop("resources", {}), f"[[methods]] {label}")
        entry.setdefault("method", label)
        _check_options(entry, f"[[methods]] {label}", [r for r in _RESERVED if r != "method"])
        methods.append(MethodSpec(label, entry, optional, resources))
    if not methods:
        raise ValueError("the grid needs at least one [[methods]] entry")
    labels = [m.name for m in methods]
    if len(set(labels)) != len(labels):
        raise ValueError(f"[[methods]] names must be unique, got {labels}")
    return methods


def _roles(content: dict[str, Any], labels: list[str]) -> tuple[str, str]:
    treatment = content.get("treatment", labels[0])
    baseline = content.get("baseline", labels[1] if len(labels) > 1 else labels[0])
    for role, value in (("treatment", treatment), ("baseline", baseline)):
        if value not in labels:
            raise ValueError(f"{role} {value!r} is not one of the grid's methods: {labels}")
    return treatment, baseline


_KINDS: dict[str, tuple[Any, str]] = {
    "string": (lambda v: isinstance(v, str), 'a string ("...")'),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "count": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "table": (lambda v: isinstance(v, dict), "a table ([{key}] followed by key = value lines)"),
    "tables": (lambda v: isinstance(v, list) and all(isinstance(e, dict) for e in v),
               "an array of tables ([[{key}]] entries)"),
}
_TOP_KINDS = {"name": "string", "description": "string", "treatment": "string",
              "baseline": "string", "settings": "table", "datasets": "tables",
              "methods": "tables", "profile": "bool", "profile_steps": "count",
              "resources": "table"}
_ENTRY_KINDS = {"datasets": {"dataset": "string", "resources": "table"},
                "methods": {"name": "string", "optional": "bool", "resources": "table"}}


def _check_kinds(content: dict[str, Any]) -> None:
    """Every top-level key and every entry's own keys have the TOML type they need, before
    any of them is used (``profile = "no"`` is not read as true)."""
    def check(where: str, key: str, value: Any, kind: str) -> None:
        fits, words = _KINDS[kind]
        if not fits(value):
            raise ValueError(f"{where} must be {words.format(key=key)}, got {value!r} "
                             f"({type(value).__name__})")

    for key, kind in _TOP_KINDS.items():
        if key in content:
            check(f"'{key}'", key, content[key], kind)
    for table, kinds in _ENTRY_KINDS.items():
        for index, entry in enumerate(content.get(table, [])):
            for key, kind in kinds.items():
                if key in entry:
                    check(f"[[{table}]] entry {index + 1}: {key}", key, entry[key], kind)


def parse_grid(text: str, source: str = "<grid>") -> Grid:
    """Parse and check a grid's TOML text (every error names the key and what is allowed)."""
    content = _toml_loads(text)
    unknown = sorted(set(content) - set(_TOP_LEVEL))
    if unknown:
        raise ValueError(f"unknown top-level key(s) {unknown}; allowed: {', '.join(_TOP_LEVEL)}")
    _check_kinds(content)
    seeds = _int_list(content, "seeds")
    durations = _int_list(content, "durations")
    if any(d < 1 for d in durations):
        raise ValueError(f"'durations' are training epochs and must be >= 1, got {durations}")
    settings = _parse_settings(content)
    datasets = _parse_datasets(content)
    methods = _parse_methods(content)
    treatment, baseline = _roles(content, [m.name for m in methods])
    profile_steps = content.get("profile_steps", 5)
    if not isinstance(profile_steps, int) or profile_steps < 0:
        raise ValueError(f"profile_steps must be an integer >= 0, got {profile_steps!r}")
    return Grid(
        name=content.get("name") or Path(source).stem, description=content.get("description", ""),
        seeds=seeds, durations=sorted(durations), treatment=treatment, baseline=baseline,
        settings=settings, datasets=datasets, methods=methods,
        profile=content.get("profile", True), profile_steps=profile_steps, text=text,
        content=content, resources=_parse_resources(content.get("resources", {}), "[resources]"),
    )
