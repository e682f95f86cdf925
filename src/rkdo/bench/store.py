"""The result store: one directory per grid, written by one process only.

    DIR/grid.toml       the grid that created the store, as written
    DIR/store.json      {"grid_name", "grid_hash", "created", "sessions": [...]}
    DIR/results.jsonl   one JSON record per finished job (key, kind, dataset, method, seed,
                        config, status, metrics per duration or profile rows, wall time,
                        versions, grid hash, command); the last record of a key wins
    DIR/runs/           the training runs' directories
    DIR/.lock           held (flock) by the one ``rkdo bench`` writing the store

:class:`Store` is the single writer: every file above is replaced atomically with fsync
(:mod:`rkdo._io`), so a kill at any moment leaves either the old or the new file. A record
counts for a job when its settings compute the same thing (:func:`same_settings`): TrainConfig
dicts are compared through :func:`rkdo.training.config_identity`, so a field added to
TrainConfig since the record was written takes its default and the record still counts.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rkdo._io import (
    ExclusiveLock,
    read_json,
    write_json_atomic,
    write_jsonl_atomic,
    write_text_atomic,
)
from rkdo.bench.grid import Grid, parse_grid
from rkdo.bench.plan import Job, plan
from rkdo.training import EXECUTION_FIELDS, config_identity

__all__ = ["GRID_FILE", "STORE_FILE", "RESULTS_FILE", "RUNS_DIR",
           "GridMismatchError", "Store", "open_store", "read_results", "same_settings",
           "is_done", "Results", "load_results", "now"]

GRID_FILE = "grid.toml"
STORE_FILE = "store.json"
RESULTS_FILE = "results.jsonl"
RUNS_DIR = "runs"


class GridMismatchError(ValueError):
    """The store was created by a different grid."""


def now() -> str:
    """The current UTC time as the store records it."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_results(out: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The store's records by job key (the last record of a key wins).

    A torn last line (a crash while a record was appended) is dropped with a warning, so its
    cell reruns; any other line that is not JSON, or a record without the fields a result
    needs, is a ``ValueError`` naming the file, the line and the field.
    """
    path = Path(out) / RESULTS_FILE
    if not path.exists():
        return {}
    lines = path.read_text().splitlines()
    last = max((n for n, line in enumerate(lines, start=1) if line.strip()), default=0)
    records: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            if number == last:
                warnings.warn(f"{path}:{number}: ignoring a torn last line (left by a crash "
                              "while it was written); its cell will run again", stacklevel=2)
                continue
            raise ValueError(f"{path}:{number} is not a JSON record ({error}); remove that "
                             "line (its cell then runs again)") from None
        problem = _malformed(record)
        if problem:
            raise ValueError(f"{path}:{number}: malformed record: {problem}; remove that line "
                             "(its cell then runs again)")
        records[record["key"]] = record
    return records


def _malformed(record: Any) -> str | None:
    """What is wrong with a parsed ``results.jsonl`` record, or ``None``."""
    if not isinstance(record, dict):
        return f"expected an object, got {type(record).__name__}"
    if not isinstance(record.get("key"), str):
        return f"'key' must be a string, got {record.get('key')!r}"
    status = record.get("status")
    if status not in ("ok", "error", "skipped"):
        return f"'status' of {record['key']!r} must be ok, error or skipped, got {status!r}"
    wanted = {"config": dict}
    if status == "ok" and record.get("kind") == "profile":
        wanted["profile"] = list
    elif status == "ok":
        wanted.update(durations=dict, dataset=str, method=str, wall_seconds=(int, float))
    for field_name, kind in wanted.items():
        if status != "error" and not isinstance(record.get(field_name), kind):
            return (f"{field_name!r} of {record['key']!r} is missing or of the wrong type "
                    f"({record.get(field_name)!r})")
    parts = record.get("durations", {}).values() if status == "ok" else ()
    if not all(isinstance(part, dict) for part in parts) or not all(
            isinstance(row, dict) for row in record.get("profile", [])):
        return f"the metrics of {record['key']!r} must be objects"
    return None


def _execution_free(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in EXECUTION_FIELDS}


def same_settings(job: Job, config: dict[str, Any]) -> bool:
    """Whether a stored ``config`` computes what ``job`` computes (execution fields aside)."""
    if job.kind == "profile":
        return _execution_free(config) == _execution_free(job.config)
    try:
        return config_identity(config) == config_identity(job.config)
    except ValueError:  # a key TrainConfig no longer has: the record is stale
        return False


def is_done(job: Job, record: dict[str, Any] | None) -> bool:
    """Whether ``record`` is a finished result of ``job`` with its current settings."""
    if record is None or record.get("status") not in ("ok", "skipped"):
        return False
    if record["status"] == "skipped" and not job.skip_reason:
        return False  # the optional method can run now
    return same_settings(job, record["config"])


def read_store_file(out: Path) -> dict[str, Any]:
    """``store.json``, checked: an object with the grid's hash and a list of sessions."""
    path, store = out / STORE_FILE, read_json(out / STORE_FILE)
    sessions = store.get("sessions", []) if isinstance(store, dict) else None
    if (isinstance(store, dict) and isinstance(store.get("grid_hash"), str)
            and isinstance(sessions, list) and all(isinstance(s, dict) for s in sessions)):
        return store
    try:
        grid = parse_grid((out / GRID_FILE).read_text(), str(out / GRID_FILE))
        fix = f"write {{\"grid_name\": \"{grid.name}\", \"grid_hash\": \"{grid.hash}\"}} into it"
    except (OSError, ValueError):
        fix = "restore it (it names the grid that made the store)"
    raise ValueError(f"{path} is not a store file (an object with grid_hash and a list of "
                     f"sessions), it holds {json.dumps(store)[:60]}; {fix}")


def _claim(out: Path, grid: Grid, allow_grid_change: bool) -> None:
    """Check that ``out`` belongs to ``grid`` (or may be taken over); write its grid files."""
    store_path = out / STORE_FILE
    if store_path.exists():
        store = read_store_file(out)
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
    write_text_atomic(out / GRID_FILE, grid.text)
    write_json_atomic(store_path, {"grid_name": grid.name, "grid_hash": grid.hash,
                                   "created": now()})


class Store:
    """An open store: its records, and the only code that writes its files."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.records = read_results(out)

    def put(self, record: dict[str, Any]) -> None:
        """Add (or replace) the record of ``record["key"]``; results.jsonl is rewritten."""
        self.records[record["key"]] = record
        write_jsonl_atomic(self.out / RESULTS_FILE, self.records.values())

    def log_session(self, session: dict[str, Any], replace: bool = False) -> dict[str, Any]:
        """Append (or update the last) entry of ``store.json``'s list of bench sessions."""
        path = self.out / STORE_FILE
        store = read_json(path)
        sessions = store.setdefault("sessions", [])
        if replace and sessions:
            sessions[-1] = session
        else:
            sessions.append(session)
        write_json_atomic(path, store)
        return session


@contextlib.contextmanager
def open_store(out: Path, grid: Grid, allow_grid_change: bool = False) -> Iterator[Store]:
    """Lock ``out`` (created if needed) for ``grid`` and yield its :class:`Store`.

    Refused (``ValueError``) while another process holds the store, and
    (:class:`GridMismatchError`) when another grid created it, unless ``allow_grid_change``.
    """
    out.mkdir(parents=True, exist_ok=True)
    busy = f"another `rkdo bench` is writing to {out}; wait for it to end"
    with ExclusiveLock(out, busy=lambda pid: f"{busy} (pid {pid})"):
        _claim(out, grid, allow_grid_change)
        yield Store(out)


@dataclass
class Results:
    """A store read back: its grid, the records of its current jobs, and flat rows.

    ``rows`` has one dict per (dataset, method, duration, seed) with the metrics as keys; the
    untrained encoder appears as method :data:`rkdo.bench.grid.FLOOR` at duration 0.
    """

    out: Path
    grid: Grid
    jobs: list[Job]
    records: dict[str, dict[str, Any]]
    rows: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    profiles: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    sessions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def methods(self) -> list[str]:
        present = {row["method"] for row in self.rows}
        return [m.name for m in self.grid.methods if m.name in present]

    def add(self, job: Job, record: dict[str, Any]) -> None:
        """File ``record`` under failed, skipped, profiles or rows (if its settings match)."""
        if record.get("status") == "error":
            self.failed.append(record)
            return
        if record.get("status") == "skipped":
            self.skipped.append(record)
            return
        if job.kind != "profile" and not same_settings(job, record["config"]):
            return
        self.records[job.key] = record
        if job.kind == "profile":
            self.profiles[job.dataset] = record["profile"]
            return
        for duration, metrics in record["durations"].items():
            self.rows.append({"dataset": job.dataset, "method": job.method,
                              "duration": int(duration), "seed": job.seed, **metrics})


def load_results(out: str | os.PathLike[str]) -> Results:
    """Read a store: only results of the store's grid whose settings match it are used."""
    out = Path(out)
    if not (out / STORE_FILE).exists() or not (out / GRID_FILE).exists():
        raise ValueError(f"{out} is not a bench store (no {STORE_FILE} / {GRID_FILE}); "
                         "create one with `rkdo bench GRID --out DIR`")
    grid = parse_grid((out / GRID_FILE).read_text(), str(out / GRID_FILE))
    stored = read_results(out)
    # the report reads what is stored: which data root or device ran it does not matter
    jobs = plan(grid, validate=False)
    results = Results(out, grid, jobs, {},
                      sessions=read_store_file(out).get("sessions", []))
    for job in jobs:
        if job.key in stored:
            results.add(job, stored[job.key])
    return results
