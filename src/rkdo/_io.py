"""Crash-safe files: atomic writes (temporary file, fsync, rename), JSON lines, and the one
exclusive lock.

A reader never sees half a file: every write goes to ``NAME.tmp`` in the same directory, is
flushed to disk with ``fsync`` and then replaces ``NAME`` with :func:`os.replace`, which is
atomic on POSIX file systems. JSON-lines files (``metrics.jsonl``, ``results.jsonl``) are read
line by line, appended a record at a time, and truncated by rewriting them atomically.

:class:`ExclusiveLock` is the lock of a run directory and of a bench store (``DIR/.lock``): the
kernel's ``flock``, so a process that dies drops it. The lock file is opened with
:func:`open_no_follow` (``O_NOFOLLOW``, no FIFO, no hard link): a ``.lock`` that is a symbolic
or hard link to a user's file is refused, never truncated.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_writer",
    "write_text_atomic",
    "write_json_atomic",
    "read_json",
    "read_jsonl",
    "append_jsonl",
    "write_jsonl_atomic",
    "LOCK_FILE",
    "LockBusyError",
    "open_no_follow",
    "ExclusiveLock",
]

LOCK_FILE = ".lock"
"""The lock file's name in a locked directory (a run directory, a bench store)."""


def _tmp(path: Path, suffix: str = "") -> Path:
    return path.with_name(path.name + ".tmp" + suffix)


def atomic_writer(
    path: str | os.PathLike[str], write: Callable[[Path], None], suffix: str = ""
) -> Path:
    """Call ``write(tmp)`` to fill a temporary file, fsync it and rename it onto ``path``.

    ``suffix`` is appended to the temporary name for writers that insist on an extension
    (``numpy.savez`` adds ``.npz`` to names without one).
    """
    path = Path(path)
    tmp = _tmp(path, suffix)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Replace ``path`` with ``text`` atomically."""
    return atomic_writer(path, lambda tmp: tmp.write_text(text))


def write_json_atomic(path: str | os.PathLike[str], payload: Any) -> Path:
    """Replace ``path`` with ``payload`` as indented, key-sorted JSON, atomically."""
    return write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """The JSON document in ``path``; a ``ValueError`` naming the file if it is not JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); restore or remove it") from None


def read_jsonl(path: str | os.PathLike[str], *, drop_torn_last: bool = False
               ) -> Iterator[dict[str, Any]]:
    """The records of a JSON-lines file (none if it does not exist; blank lines skipped).

    ``drop_torn_last``: a last line that is not JSON (a crash while it was appended) is dropped
    with a warning instead of refused; any other bad line is a ``ValueError`` naming it.
    """
    path = Path(path)
    if not path.exists():
        return
    lines = path.read_text().splitlines()
    last = max((n for n, line in enumerate(lines, start=1) if line.strip()), default=0)
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as error:
                if drop_torn_last and number == last:
                    warnings.warn(f"{path}:{number}: ignoring a torn last line (left by a crash "
                                  "while it was written)", stacklevel=2)
                    return
                raise ValueError(
                    f"{path}:{number} is not a JSON record ({error}); remove that line"
                ) from None


def append_jsonl(handle_or_path: IO[str] | str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one record as a line (to an open text handle, or to a file by path). A path is
    opened with :func:`open_no_follow`: a ``metrics.jsonl`` that is a symbolic or hard link to
    another file is refused, not written through."""
    line = json.dumps(record, sort_keys=True) + "\n"
    if hasattr(handle_or_path, "write"):
        handle_or_path.write(line)  # type: ignore[union-attr]
        handle_or_path.flush()  # type: ignore[union-attr]
        return
    fd = open_no_follow(handle_or_path,  # type: ignore[arg-type]
                        os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    with os.fdopen(fd, "a") as handle:
        handle.write(line)


def write_jsonl_atomic(path: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> Path:
    """Replace ``path`` with ``records``, one JSON object a line, atomically."""
    return write_text_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def open_no_follow(path: str | os.PathLike[str], flags: int = os.O_RDWR | os.O_CREAT,
                   mode: int = 0o644) -> int:
    """A file descriptor of ``path``, a regular file with one name, opened without following a
    symbolic link (``O_NOFOLLOW``) or blocking on a FIFO; ``ValueError`` saying what to remove
    otherwise. For files rkdo writes in place (lock files)."""
    path = Path(path)
    refuse = (f"{path} is not a regular file of its own (a link to another file?); rkdo "
              f"will not write through it: remove it (`rm {path}`) and rerun")
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise ValueError(refuse) from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        raise ValueError(refuse)
    return fd


class LockBusyError(ValueError):
    """Another process holds the lock; ``holder`` is what it wrote there (its pid)."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


class ExclusiveLock:
    """An exclusive, non-blocking ``flock`` on ``directory/.lock`` that records the holder's pid.

    ``busy`` makes the refusal's message from the holder's pid (what to wait for, what to do).
    Use as a context manager or with :meth:`acquire` / :meth:`release`.
    """

    def __init__(self, directory: str | os.PathLike[str],
                 busy: Callable[[str], str] | None = None) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_FILE
        self.busy = busy or (lambda pid: f"{self.directory} is in use by process {pid}")
        self.fd: int | None = None

    @property
    def held(self) -> bool:
        return self.fd is not None

    def acquire(self) -> ExclusiveLock:
        """Take the lock (creating the directory), or raise :class:`LockBusyError`."""
        if self.fd is not None:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = open_no_follow(self.path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockBusyError(self.busy(holder), holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> ExclusiveLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
