"""Shared inputs of the viz tests: a circulant pair of fields, a fake run directory, pixels."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rkdo.fields import Fields


class Circulant:
    """Two frames over ``N`` points: row ``i`` of each field is a fixed row rolled by ``i``.

    The student is fixed; the teacher's peak moves from ``i + 1`` (frame 0) to ``i + 2``.
    """

    N = 6
    # row i puts these masses on i, i+1, ..., i+5 (mod N)
    STUDENT_ROW = np.array([0.30, 0.30, 0.20, 0.12, 0.05, 0.03])
    TEACHER_ROWS = (np.array([0.20, 0.60, 0.05, 0.05, 0.05, 0.05]),   # frame 0: on i+1
                    np.array([0.20, 0.05, 0.60, 0.05, 0.05, 0.05]))   # frame 1: on i+2

    @staticmethod
    def matrix(row: np.ndarray) -> np.ndarray:
        return np.stack([np.roll(row, i) for i in range(len(row))])

    @classmethod
    def fields(cls, labels: np.ndarray | None = None) -> Fields:
        teacher = np.stack([cls.matrix(r) for r in cls.TEACHER_ROWS])
        student = np.stack([cls.matrix(cls.STUDENT_ROW)] * 2)
        return Fields(teacher, student, np.array([0, 10]), labels)


class Pixels:
    """Colour helpers for checks on rendered images."""

    @staticmethod
    def rgb(color: str) -> np.ndarray:
        return np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)])

    @staticmethod
    def close(pixel: np.ndarray, color, tolerance: int = 40) -> bool:
        color = Pixels.rgb(color) if isinstance(color, str) else np.asarray(color)
        return int(np.abs(pixel.astype(int) - color).max()) <= tolerance

    @staticmethod
    def read_gif(path: Path) -> list[np.ndarray]:
        frames = []
        with Image.open(path) as gif:
            for index in range(gif.n_frames):
                gif.seek(index)
                frames.append(np.asarray(gif.convert("RGB")))
        return frames


def _fake_run(directory: Path, frames: int = 5, probes: int = 10, seed: int = 0) -> Path:
    """A run directory in the trainer's on-disk format (fields.npz, metrics.jsonl, ...)."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True)
    logits = rng.normal(size=(frames, probes, probes)) + 3 * np.eye(probes)
    student = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    teacher = 0.5 * np.eye(probes) + 0.5 * student[0]
    teacher = np.broadcast_to(teacher, student.shape)
    np.savez_compressed(directory / "fields.npz", steps=np.arange(frames, dtype=np.int64) * 20,
                        teacher=teacher.astype(np.float32), student=student.astype(np.float32),
                        labels=np.arange(probes, dtype=np.int64) % 3)
    lines = []
    for step in range(10, 101, 10):
        lines.append({"step": step, "epoch": step / 50, "loss": 2.0 - 0.01 * step - 0.1 * seed,
                      "lr": 1e-3, "images_per_s": 500.0})
        if step % 50 == 0:
            lines.append({"kind": "epoch", "step": step, "epoch": step // 50, "mean_loss": 1.5})
            lines.append({"kind": "eval", "epoch": step // 50, "step": step,
                          "linear_probe": 0.5 + step / 1000 + 0.05 * seed,
                          "knn_acc_20": 0.4 + 0.1 * seed, "nmi": 0.3 - 0.1 * seed,
                          "heldout_icon_loss": 2.5 + seed})
    (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (directory / "config.json").write_text(json.dumps({"method": "rkdo", "dataset": "digits"}))
    (directory / "eval.json").write_text(json.dumps({"epoch": 2, "step": 100,
                                                     "linear_probe": 0.6}))
    return directory


@pytest.fixture
def circulant() -> type[Circulant]:
    return Circulant


@pytest.fixture
def pixels() -> type[Pixels]:
    return Pixels


@pytest.fixture
def fake_run() -> Callable[..., Path]:
    """``fake_run(directory, frames=5, probes=10, seed=0)`` writes a run directory."""
    return _fake_run
