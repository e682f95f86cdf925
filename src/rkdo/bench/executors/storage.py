"""What workers on other machines must see, and refusing up front what they cannot.

A grid run on Ray or Slurm needs, at the same path on every node: the store (``--out``; the
workers write ``runs/`` and the lease files, Slurm jobs their ``jobs/`` folders), the datasets
(``data_root``; download them once before, not from many jobs at once) and this Python
environment. The driver alone writes ``results.jsonl``.

:func:`check_shared` refuses a path that is certainly local to one machine: under ``/tmp``,
``/var/tmp``, ``/dev/shm`` or ``/run``, or on a memory file system (tmpfs). Other local disks
cannot be told apart from a shared one from the driver's side (an ext4 disk may be exported over
NFS); set ``RKDO_SHARED_STORAGE=1`` to skip the check for a path you know is shared.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["LOCAL_PREFIXES", "LOCAL_FILE_SYSTEMS", "local_reason", "check_shared"]

LOCAL_PREFIXES = ("/tmp", "/var/tmp", "/dev/shm", "/run")
LOCAL_FILE_SYSTEMS = ("tmpfs", "ramfs", "devtmpfs")
SKIP_VARIABLE = "RKDO_SHARED_STORAGE"


def _file_system(path: Path) -> str | None:
    """The type of the file system mounted deepest above ``path`` (Linux), else ``None``."""
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    best, kind = "", None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = fields[1].replace("\\040", " ")
        inside = str(path) == mount or str(path).startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > len(best):
            best, kind = mount, fields[2]
    return kind


def local_reason(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` is certainly on one machine only, or ``None`` if it may be shared."""
    resolved = Path(path).expanduser().absolute().resolve()
    for prefix in LOCAL_PREFIXES:
        if str(resolved) == prefix or str(resolved).startswith(prefix + "/"):
            return f"it lies under {prefix}, which is local to each machine"
    kind = _file_system(resolved)
    if kind in LOCAL_FILE_SYSTEMS:
        return f"it is on a {kind} file system, which lives in one machine's memory"
    return None


def check_shared(path: str | os.PathLike[str], what: str, where: str) -> None:
    """Refuse (``ValueError``) a ``path`` that workers of ``where`` cannot see."""
    if os.environ.get(SKIP_VARIABLE) == "1":
        return
    reason = local_reason(path)
    if reason is not None:
        raise ValueError(
            f"{what} {str(path)!r} cannot be seen by workers on {where}: {reason}. Put it on "
            f"storage every node mounts at the same path (e.g. your home or project file "
            f"system), or set {SKIP_VARIABLE}=1 if it is shared after all")
