"""rkdo._io: atomic writes leave the old file or the new one, never a half or a .tmp; JSON lines
read, append and truncate; a bad record names its file and line."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from rkdo._io import (
    append_jsonl,
    atomic_writer,
    read_json,
    read_jsonl,
    write_json_atomic,
    write_jsonl_atomic,
    write_text_atomic,
)


def test_write_text_atomic_replaces_and_leaves_no_tmp(tmp_path: Path) -> None:
    path = tmp_path / "note.txt"
    assert write_text_atomic(path, "one") == path
    write_text_atomic(path, "two")
    assert path.read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["note.txt"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_tmp(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    write_json_atomic(path, {"a": 1})

    def half_then_fail(tmp: Path) -> None:
        tmp.write_text('{"a": ')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_writer(path, half_then_fail)
    assert read_json(path) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_a_failed_first_write_creates_nothing(tmp_path: Path) -> None:
    def fail(tmp: Path) -> None:
        tmp.write_bytes(b"x")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic_writer(tmp_path / "fields.npz", fail, suffix=".npz")
    assert list(tmp_path.iterdir()) == []


def test_atomic_writer_suffix_names_the_temporary_file(tmp_path: Path) -> None:
    seen: list[str] = []

    def write(tmp: Path) -> None:
        seen.append(tmp.name)
        tmp.write_bytes(b"data")

    atomic_writer(tmp_path / "fields.npz", write, suffix=".npz")
    assert seen == ["fields.npz.tmp.npz"]
    assert (tmp_path / "fields.npz").read_bytes() == b"data"


def test_json_round_trip_is_sorted_and_indented(tmp_path: Path) -> None:
    path = write_json_atomic(tmp_path / "c.json", {"b": 2, "a": [1, 2]})
    assert read_json(path) == {"a": [1, 2], "b": 2}
    text = path.read_text()
    assert text.index('"a"') < text.index('"b"') and text.endswith("}\n") and "\n  " in text


def test_read_json_names_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match=rf"{path} is not valid JSON .*restore or remove it"):
        read_json(path)


def test_jsonl_append_read_and_truncate(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    assert list(read_jsonl(path)) == []  # a missing file has no records
    append_jsonl(path, {"step": 1, "loss": 0.5})
    append_jsonl(path, {"step": 2, "loss": 0.25})
    with open(path, "a") as handle:
        handle.write("\n")  # blank lines are skipped
        append_jsonl(handle, {"step": 3, "loss": 0.125})
    records = list(read_jsonl(path))
    assert [r["step"] for r in records] == [1, 2, 3]
    # truncating keeps the records up to a step, atomically
    write_jsonl_atomic(path, (r for r in records if r["step"] <= 2))
    assert list(read_jsonl(path)) == records[:2]
    assert all(json.loads(line) for line in path.read_text().splitlines())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.jsonl"]


@pytest.mark.parametrize("link", ["symbolic", "hard"])
def test_appending_to_a_log_that_is_a_link_is_refused_and_its_target_kept(tmp_path: Path,
                                                                         link: str) -> None:
    users = tmp_path / "users-file.txt"
    users.write_text("precious\n")
    log = tmp_path / "metrics.jsonl"
    if link == "symbolic":
        log.symlink_to(users)
    else:
        os.link(users, log)
    refused = r"not a regular file.*remove it \(`rm .*metrics\.jsonl`\)"
    with pytest.raises(ValueError, match=refused):
        append_jsonl(log, {"step": 1})
    assert users.read_text() == "precious\n"


def test_append_to_an_open_handle_flushes() -> None:
    handle = io.StringIO()
    append_jsonl(handle, {"b": 1, "a": 2})
    assert handle.getvalue() == '{"a": 2, "b": 1}\n'


def test_a_bad_record_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n\n{"step": 2\n')
    records = read_jsonl(path)
    assert next(records) == {"step": 1}
    with pytest.raises(ValueError, match=rf"{path}:3 is not a JSON record .*remove that line"):
        next(records)


# ------------------------------------------------------------------ the exclusive lock


def test_the_lock_records_its_holder_and_refuses_a_second_one(tmp_path: Path) -> None:
    from rkdo._io import LOCK_FILE, ExclusiveLock, LockBusyError

    with ExclusiveLock(tmp_path / "d", busy=lambda pid: f"busy: pid {pid}") as held:
        assert held.held and (tmp_path / "d" / LOCK_FILE).read_text() == f"{os.getpid()}\n"
        with pytest.raises(LockBusyError, match=rf"busy: pid {os.getpid()}"):
            ExclusiveLock(tmp_path / "d", busy=lambda pid: f"busy: pid {pid}").acquire()
        with pytest.raises(LockBusyError, match=rf"in use by process {os.getpid()}"):
            ExclusiveLock(tmp_path / "d").acquire()
    again = ExclusiveLock(tmp_path / "d").acquire()  # released: free again
    again.release()


@pytest.mark.parametrize("link", ["symbolic", "hard", "fifo"])
def test_a_lock_file_that_is_a_link_is_refused_and_its_target_kept(tmp_path: Path,
                                                                    link: str) -> None:
    from rkdo._io import LOCK_FILE, ExclusiveLock

    users = tmp_path / "users-file.txt"
    users.write_text("precious\n")
    run = tmp_path / "run"
    run.mkdir()
    if link == "symbolic":
        (run / LOCK_FILE).symlink_to(users)
    elif link == "hard":
        os.link(users, run / LOCK_FILE)
    else:
        os.mkfifo(run / LOCK_FILE)  # opening it for writing would block
    with pytest.raises(ValueError, match=r"not a regular file.*remove it \(`rm .*\.lock`\)"):
        ExclusiveLock(run).acquire()
    assert users.read_text() == "precious\n"
