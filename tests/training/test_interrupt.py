"""No lost work, with real processes: signals stop after the step with a checkpoint, the run
directory is locked while a run trains in it, a full disk is one line and leaves no .tmp."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rkdo._io import LOCK_FILE
from rkdo.training import load_run, train
from rkdo.training.rundir import RunLock

TINY = ["--dataset", "digits", "--batch-size", "32", "--embedding-dim", "16", "--hidden-dim",
        "32", "--eval-protocol", "none", "--no-progress", "--log-every", "1"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[2] / "src")}


def _start(run: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "rkdo", "train", "--out", str(run), *TINY,
               "--epochs", "1000", "--steps-per-epoch", "5", *extra]
    return subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_for_steps(process: subprocess.Popen, run: Path, steps: int = 2) -> None:
    deadline = time.monotonic() + 120
    metrics = run / "metrics.jsonl"
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= steps:
            return
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"the run did not start: {process.communicate()[1][-2000:]}")


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_finishes_the_step_writes_a_checkpoint_and_says_so(
    tmp_path: Path, signum: int, code: int,
) -> None:
    run = tmp_path / "run"
    process = _start(run)
    try:
        _wait_for_steps(process, run)
        if signum == signal.SIGINT:
            # while it trains, the directory is locked: another process may not resume it
            other = subprocess.run([sys.executable, "-m", "rkdo", "train", "--resume", str(run),
                                    "--no-progress"], env=ENV, capture_output=True, text=True,
                                   timeout=120)
            assert other.returncode == 2
            assert f"is in use by another `rkdo train` (pid {process.pid})" in other.stderr
        process.send_signal(signum)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == code, err
    assert "Traceback" not in err
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    name = signal.Signals(signum).name
    assert f"interrupted by {name} after step {state['step']} of 5000; checkpoint written" in err
    assert f"`rkdo train --resume {run}`" in err
    logged = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert logged[-1] == state["step"]  # nothing after the checkpoint, nothing lost before it
    # the lock died with the process; the run resumes (one more step here)
    assert train(None, run, resume=True, progress=False, stop_after=state["step"] + 1) == {
        "stopped_at": state["step"] + 1}


def test_a_stale_lock_is_recovered_and_a_live_one_refuses(tmp_path: Path, fast) -> None:
    run = tmp_path / "run"
    train(fast, run, progress=False, stop_after=2)
    (run / LOCK_FILE).write_text("999999999\n")  # left by a process that died
    assert train(None, run, resume=True, progress=False, stop_after=3) == {"stopped_at": 3}
    held = RunLock(run).acquire()
    try:
        mine = rf"in use by another `rkdo train` \(pid {os.getpid()}\)"
        with pytest.raises(ValueError, match=mine):
            train(None, run, resume=True, progress=False)
        with pytest.raises(ValueError, match="in use by another"):
            train(fast, run, progress=False, overwrite=True)
    finally:
        held.release()
    assert load_run(run).step == 3


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))


def test_a_full_disk_is_one_line_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    run = tmp_path / "run"
    command = [sys.executable, "-m", "rkdo", "train", "--out", str(run), *TINY,
               "--epochs", "1", "--steps-per-epoch", "2"]
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=180,
                          preexec_fn=_limit_file_size)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "rkdo train: error: File too large" in done.stderr
    assert f"({run / 'checkpoint.pt'})" in done.stderr and "Free some space" in done.stderr
    assert not list(run.glob("*.tmp"))


def test_a_lock_that_links_to_a_users_file_is_refused_and_the_file_kept(tmp_path: Path,
                                                                          fast) -> None:
    run = tmp_path / "run"
    train(fast, run, progress=False, stop_after=2)
    users = tmp_path / "home-file"
    users.write_text("the user's own notes\n")
    (run / LOCK_FILE).unlink(missing_ok=True)
    (run / LOCK_FILE).symlink_to(users)
    done = subprocess.run([sys.executable, "-m", "rkdo", "train", "--resume", str(run),
                           "--no-progress"], env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "not a regular file" in done.stderr and "Traceback" not in done.stderr
    assert users.read_text() == "the user's own notes\n"
