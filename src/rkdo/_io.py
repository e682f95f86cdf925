"""Crash-safe files: atomic writes (temporary file, fsync, rename) and JSON lines.

A reader never sees half a file: every write goes to ``NAME.tmp`` in the same directory, is
flushed to disk with ``fsync`` and then replaces ``NAME`` with :func:`os.replace`, which is
atomic on POSIX file systems. JSON-lines files (``metrics.jsonl``, ``results.jsonl``) are read
line by line, appended a record at a time, and truncated by rewriting them atomically.
"""

from __future__ import annotations

import json
import os
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
]


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


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The records of a JSON-lines file (none if it does not exist; blank lines skipped)."""
    path = Path(path)
    if not path.exists():
        return
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"{path}:{number} is not a JSON record ({error}); remove that line"
                ) from None


def append_jsonl(handle_or_path: IO[str] | str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one record as a line (to an open text handle, or to a file by path)."""
    line = json.dumps(record, sort_keys=True) + "\n"
    if hasattr(handle_or_path, "write"):
        handle_or_path.write(line)  # type: ignore[union-attr]
        handle_or_path.flush()  # type: ignore[union-attr]
        return
    with open(handle_or_path, "a") as handle:  # type: ignore[arg-type]
        handle.write(line)


def write_jsonl_atomic(path: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> Path:
    """Replace ``path`` with ``records``, one JSON object a line, atomically."""
    return write_text_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
