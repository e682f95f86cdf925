"""The field recorder's frames live in the checkpoint: a recording run interrupted and resumed
writes the same complete ``fields.npz`` as an uninterrupted one, and ``--resume --epochs N``
records the extension too; more anchors than probe images are refused, not clipped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rkdo.fields import load_fields
from rkdo.training import TrainConfig, train

TINY = ["--dataset", "digits", "--batch-size", "32", "--embedding-dim", "16", "--hidden-dim",
        "32", "--eval-protocol", "none", "--no-progress", "--log-every", "1"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1",
       "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}


def _frames(run: Path) -> tuple[list[int], np.ndarray, np.ndarray]:
    fields = load_fields(run / "fields.npz")
    return list(fields.steps), fields.teacher, fields.student


def test_interrupted_recording_resumes_to_a_complete_fields_file(
    tmp_path: Path, fast: TrainConfig,
) -> None:
    config = replace(fast, epochs=3, steps_per_epoch=4, record_field=6, record_every=5)
    whole = tmp_path / "whole"
    train(config, whole, progress=False)
    steps, teacher, student = _frames(whole)
    assert steps == [0, 5, 10, 12]  # every 5 steps and the final one

    parts = tmp_path / "parts"
    assert train(config, parts, progress=False, stop_after=7) == {"stopped_at": 7}
    assert not (parts / "fields.npz").exists()
    train(None, parts, resume=True, progress=False)
    again = _frames(parts)
    assert again[0] == steps
    np.testing.assert_array_equal(again[1], teacher)
    np.testing.assert_array_equal(again[2], student)

    # --resume --epochs N on a finished recording run records the extension as well
    train(None, parts, resume=True, progress=False, changes={"epochs": 5})
    longer = _frames(parts)
    assert longer[0] == [0, 5, 10, 12, 15, 20]
    np.testing.assert_array_equal(longer[1][:4], teacher)


def test_ctrl_c_then_resume_from_the_command_line_keeps_every_frame(tmp_path: Path) -> None:
    run = tmp_path / "run"
    command = [sys.executable, "-m", "rkdo", "train", "--out", str(run), *TINY, "--epochs", "12",
               "--steps-per-epoch", "5", "--record-field", "8", "--record-every", "5"]
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        deadline = time.monotonic() + 180
        metrics = run / "metrics.jsonl"
        while time.monotonic() < deadline and process.poll() is None:
            if metrics.exists() and len(metrics.read_text().splitlines()) >= 12:
                break
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=180)
    finally:
        process.kill()
    assert process.returncode == 130, err
    done = subprocess.run([sys.executable, "-m", "rkdo", "train", "--resume", str(run),
                           "--no-progress"], env=ENV, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    steps, teacher, _ = _frames(run)
    assert steps == list(range(0, 61, 5))
    assert teacher.shape == (len(steps), 8, 8) and np.isfinite(teacher).all()


def test_more_anchors_than_probe_images_are_refused(tmp_path: Path, fast: TrainConfig) -> None:
    # digits holds 360 test images: 5000 anchors cannot be recorded (it used to clip silently)
    with pytest.raises(ValueError, match=r"--record-field 5000 .* 360 "):
        train(replace(fast, record_field=5000), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
