"""Run-directory leases: one live job owns a run directory; a dead one's claim is reclaimed.

    DIR/runs/<cell>/lease.json   {"owner", "host", "pid", "job", "started", "heartbeat"}

A job that trains a cell holds the lease of its run directory for as long as it runs: a thread
rewrites ``heartbeat`` (Unix time) every :data:`HEARTBEAT_SECONDS`. A lease is *live* while its
heartbeat is fresher than :data:`STALE_SECONDS` and, on this host, its process exists; anything
else (a SIGKILLed driver, a killed Ray worker, a Slurm job past its time limit) is *stale* and
the next job to claim the directory reclaims it. A job that finds a live lease is refused
(:class:`LeaseHeldError`): an orphaned worker of a killed ``rkdo bench`` keeps its run, and the
rerun that follows collects it once it has finished.

Leases are created with ``link(2)``, which fails when the name exists, also on NFS. Two jobs
reclaiming the same stale lease at once cannot happen while the store lock (one driver per
store) is held. The staleness test compares clocks of different hosts: keep them in sync (NTP).
A heartbeat more than :data:`STALE_SECONDS` in the future is impossible for a live job (a wrong
clock, a hand-edited file): it is stale too, and reclaiming it warns with how to clear it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rkdo._io import write_json_atomic

__all__ = ["LEASE_FILE", "HEARTBEAT_SECONDS", "STALE_SECONDS", "LeaseHeldError", "read_lease",
           "is_live", "from_the_future", "live_holder", "lease"]

LEASE_FILE = "lease.json"
HEARTBEAT_SECONDS = 15.0
STALE_SECONDS = 120.0
"""A heartbeat older than this is a dead owner's (8 missed beats: tolerant of slow NFS)."""


class LeaseHeldError(RuntimeError):
    """A live job owns the run directory."""


def read_lease(run_dir: Path) -> dict[str, Any] | None:
    """The lease of ``run_dir``, ``None`` if there is none, ``{}`` if it cannot be read."""
    try:
        return json.loads((run_dir / LEASE_FILE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # half written by a foreign tool: judged by its age alone


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


def _heartbeat(holder: dict[str, Any], path: Path) -> float | None:
    """The lease's last heartbeat (Unix time; the file's mtime if it has none), or ``None``."""
    try:
        beat = float(holder.get("heartbeat", path.stat().st_mtime))
    except (OSError, TypeError, ValueError):
        return None
    return beat if math.isfinite(beat) else None


def from_the_future(holder: dict[str, Any], path: Path,
                    stale_seconds: float = STALE_SECONDS) -> bool:
    """Whether the lease's heartbeat lies further ahead than clock skew explains (more than
    ``stale_seconds`` after now): an impossible time, from a wrong clock or a foreign tool."""
    beat = _heartbeat(holder, path)
    return beat is not None and beat - time.time() > stale_seconds


def is_live(holder: dict[str, Any], path: Path, stale_seconds: float = STALE_SECONDS) -> bool:
    """Whether the lease ``holder`` (read from ``path``) belongs to a job that is still running:
    a heartbeat within ``stale_seconds`` of now (one from the future is impossible: stale) and,
    on this host, a process that exists."""
    beat = _heartbeat(holder, path)
    if beat is None or abs(time.time() - beat) > stale_seconds:
        return False
    if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
        return _pid_alive(holder["pid"])
    return True


def _describe(holder: dict[str, Any]) -> str:
    job = f", job {holder['job']}" if holder.get("job") else ""
    beat = holder.get("heartbeat")
    age = ""
    if isinstance(beat, (int, float)):
        ago = time.time() - float(beat)
        age = (f", heartbeat {ago:.0f} s ago" if ago >= 0 else
               f", heartbeat {-ago:.0f} s in the future")
    where = f"host {holder.get('host')}, pid {holder.get('pid')}"
    return f"{holder.get('owner', '?')} ({where}{job}{age})"


def _claim(run_dir: Path, holder: dict[str, Any], stale_seconds: float) -> None:
    path = run_dir / LEASE_FILE
    tmp = run_dir / f".{LEASE_FILE}.{holder['owner']}"
    write_json_atomic(tmp, holder)
    try:
        for _ in range(2):
            try:
                os.link(tmp, path)
                return
            except FileExistsError:
                current = read_lease(run_dir)
                if current is not None and is_live(current, path, stale_seconds):
                    raise LeaseHeldError(
                        f"{run_dir} is owned by a live job: {_describe(current)}; it is left "
                        "to finish, rerun later to collect it (or end that job)") from None
                if current is not None and from_the_future(current, path, stale_seconds):
                    warnings.warn(_future_message(path, current), stacklevel=3)
                with contextlib.suppress(FileNotFoundError):  # reclaim the dead owner's lease
                    os.replace(path, run_dir / f".{LEASE_FILE}.reclaimed")
        raise LeaseHeldError(f"{run_dir}: another job claimed the lease at the same moment")
    finally:
        tmp.unlink(missing_ok=True)


def _future_message(path: Path, holder: dict[str, Any]) -> str:
    return (f"{path} ({_describe(holder)}) is dated in the future, which no live job can be: "
            "it is treated as stale and reclaimed. Check the clocks of the hosts that share the "
            f"store (NTP); if a job still trains there, end it; `rm {path}` clears such a lease")


def _beat(run_dir: Path, holder: dict[str, Any], stop: threading.Event, every: float) -> None:
    while not stop.wait(every):
        current = read_lease(run_dir)
        if current is not None and current.get("owner") != holder["owner"]:
            return  # reclaimed by another job after we stalled: do not overwrite its claim
        with contextlib.suppress(OSError):  # a missed beat is retried at the next one
            write_json_atomic(run_dir / LEASE_FILE, {**holder, "heartbeat": time.time()})


@contextlib.contextmanager
def lease(run_dir: Path, *, heartbeat_seconds: float | None = None,
          stale_seconds: float | None = None) -> Iterator[dict[str, Any]]:
    """Own ``run_dir`` while the block runs (created if needed); yields the lease written.

    Raises :class:`LeaseHeldError` if a live job owns it; a stale lease is reclaimed.
    """
    every = HEARTBEAT_SECONDS if heartbeat_seconds is None else heartbeat_seconds
    stale = STALE_SECONDS if stale_seconds is None else stale_seconds
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    holder = {"owner": uuid.uuid4().hex[:12], "host": socket.gethostname(), "pid": os.getpid(),
              "job": os.environ.get("SLURM_JOB_ID") or os.environ.get("RAY_JOB_ID"),
              "started": started, "heartbeat": started}
    _claim(run_dir, holder, stale)
    stop = threading.Event()
    beater = threading.Thread(target=_beat, args=(run_dir, holder, stop, every),
                              name=f"lease {run_dir.name}", daemon=True)
    beater.start()
    try:
        yield holder
    finally:
        stop.set()
        beater.join()
        current = read_lease(run_dir)
        if current is not None and current.get("owner") == holder["owner"]:
            (run_dir / LEASE_FILE).unlink(missing_ok=True)


def live_holder(run_dir: Path, stale_seconds: float | None = None) -> dict[str, Any] | None:
    """The lease of ``run_dir`` if a live job holds it, else ``None``."""
    holder = read_lease(run_dir)
    if holder is None:
        return None
    stale = STALE_SECONDS if stale_seconds is None else stale_seconds
    return holder if is_live(holder, run_dir / LEASE_FILE, stale) else None
