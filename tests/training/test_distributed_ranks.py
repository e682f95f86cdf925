"""Multi-process runs with real processes (gloo), started by hand as torchrun would start them:
ranks given different settings refuse in one line naming the fields (no hang, no gloo
traceback); SIGTERM to one non-zero rank stops every rank at the same step with a checkpoint."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

TINY = ["--dataset", "digits", "--embedding-dim", "16", "--hidden-dim", "32",
        "--eval-protocol", "none", "--no-progress", "--log-every", "1"]
SRC = str(Path(__file__).resolve().parents[2] / "src")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _ranks(run: Path, flags: list[list[str]]) -> list[subprocess.Popen]:
    """One process per rank, each with its own flags, in torchrun's environment."""
    port = str(_free_port())
    processes = []
    for rank, extra in enumerate(flags):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": SRC, "RANK": str(rank),
               "LOCAL_RANK": str(rank), "WORLD_SIZE": str(len(flags)),
               "LOCAL_WORLD_SIZE": str(len(flags)), "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": port}
        command = [sys.executable, "-m", "rkdo", "train", "--out", str(run), *TINY, *extra]
        processes.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))
    return processes


def _finish(processes: list[subprocess.Popen], timeout: float = 240) -> list[tuple[int, str]]:
    results = []
    try:
        for process in processes:
            _, err = process.communicate(timeout=timeout)
            results.append((process.returncode, err))
    finally:
        for process in processes:
            process.kill()
    return results


@pytest.mark.parametrize(
    ("rank1", "named"),
    [
        (["--lr", "0.1"], "lr"),
        (["--epochs", "2"], "epochs"),
        (["--batch-size", "16"], "batch_size"),
    ],
)
def test_ranks_with_different_settings_refuse_in_one_line(
    tmp_path: Path, rank1: list[str], named: str,
) -> None:
    base = ["--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "32", "--lr", "0.001"]
    results = _finish(_ranks(tmp_path / "run", [base, base + rank1]))
    for code, err in results:
        assert code == 2, err[-2000:]
        assert "Traceback" not in err
        line = err.strip().splitlines()[-1]
        assert "the ranks were started with different settings" in line and named in line, line
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_sigterm_to_one_rank_stops_every_rank_with_a_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    flags = ["--epochs", "1000", "--steps-per-epoch", "4", "--batch-size", "32"]
    processes = _ranks(run, [flags, flags])
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and all(p.poll() is None for p in processes):
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.1)
    processes[1].send_signal(signal.SIGTERM)
    (code0, err0), (code1, err1) = _finish(processes)
    assert (code0, code1) == (143, 143), (err0[-2000:], err1[-2000:])
    assert "Traceback" not in err0 + err1
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert "interrupted by SIGTERM" in err0 and f"after step {state['step']}" in err0
    logged = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert logged[-1] == state["step"]  # every step rank 0 logged is in the checkpoint
