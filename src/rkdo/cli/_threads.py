"""How many compute threads the ``rkdo`` command uses and how they wait, set before torch loads.

OpenMP worker threads that *spin* while they wait for work hold a core that another process
needs; on a shared machine (a cluster node, CI, a laptop with a browser open) a command then runs
many times slower than idle, and slows its neighbours too. So, unless the user has chosen, the
``rkdo`` command sets

    OMP_WAIT_POLICY = PASSIVE                       (idle threads sleep instead of spinning)
    OMP_NUM_THREADS = max(1, min(cores, cores - busy))

where ``cores`` is the number of CPUs this process may run on and ``busy`` the CPUs that other
processes keep busy: the smaller of the one-minute load average (rounded down) and the threads
runnable right now, so that neither a job that has just ended nor a momentary spike counts. One
thread per free core, never fewer than one. Torch's OpenMP runtime reads both variables once,
when it starts, which is why :func:`configure` runs before anything imports torch.

The user's choice wins, in this order: ``rkdo --threads N``, ``RKDO_THREADS``,
``OMP_NUM_THREADS`` (and ``OMP_WAIT_POLICY``) already in the environment. Child processes
(``rkdo bench --executor process`` workers) inherit the setting. ``rkdo demo`` uses one thread
when the user chose none: the thread count changes the order of floating-point sums, training
then takes a slightly different path and every number moves, and the demo's table should be the
same on every machine.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping, Sequence

__all__ = ["busy_cores", "configure", "default_threads", "threads_flag"]


def default_threads(cores: int | None = None, busy: int | None = None) -> int:
    """One thread per core that other processes leave free, at least one."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
    if busy is None:
        busy = busy_cores()
    return max(1, min(cores, cores - busy))


def busy_cores() -> int:
    """CPUs other processes keep busy: min(one-minute load average, threads runnable now)."""
    try:
        load = int(os.getloadavg()[0])
    except OSError:  # no load average on this platform
        return 0
    try:  # /proc/loadavg: "0.52 0.40 0.33 3/412 1234"; the runnable count includes this one
        with open("/proc/loadavg") as handle:
            running = int(handle.read().split()[3].split("/")[0]) - 1
    except (OSError, ValueError, IndexError):
        return load
    return max(0, min(load, running))


def threads_flag(argv: Sequence[str]) -> str | None:
    """The value of a global ``--threads N`` (or ``--threads=N``) before the command name."""
    for position, token in enumerate(argv):
        if not token.startswith("-"):
            return None  # the command: its own options are its own
        if token == "--threads":
            return argv[position + 1] if position + 1 < len(argv) else None
        if token.startswith("--threads="):
            return token.split("=", 1)[1]
    return None


def configure(argv: Sequence[str] = (), environ: MutableMapping[str, str] | None = None, *,
              default: int | None = None) -> str:
    """Set the OpenMP wait policy and thread count in ``environ`` (default ``os.environ``) and
    return the thread count in force. ``default``: the count when the user chose none (instead
    of :func:`default_threads`). Call before torch is imported."""
    environ = os.environ if environ is None else environ
    environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    chosen = threads_flag(argv) or environ.get("RKDO_THREADS")
    if chosen is not None:
        if not chosen.isdigit() or int(chosen) < 1:
            raise ValueError(f"--threads / RKDO_THREADS must be a whole number >= 1, got "
                             f"{chosen!r}")
        environ["OMP_NUM_THREADS"] = chosen
    elif not environ.get("OMP_NUM_THREADS"):
        environ["OMP_NUM_THREADS"] = str(default or default_threads())
    return environ["OMP_NUM_THREADS"]
