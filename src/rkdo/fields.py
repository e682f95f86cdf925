"""Neighbourhood fields over time: the one owner of the ``fields.npz`` format.

A *field* is the pair of row-stochastic matrices a neighbourhood-KL loss compares over a fixed
set of ``N`` anchors: the teacher ``p(j|i)`` and the student ``q(j|i)``. Recorded at ``F``
times (``rkdo train --record-field N``, or :func:`rkdo.viz.simulate.simulate`) they are stored as

    fields.npz:  steps (F,) int64,  teacher (F, N, N) float32,  student (F, N, N) float32,
                 labels (N,) int64 (optional)

and drawn by :mod:`rkdo.viz.kaleidoscope`. Writes are atomic (:mod:`rkdo._io`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rkdo._io import atomic_writer

__all__ = ["FIELDS_FILE", "MIN_POINTS", "Fields", "load_fields", "save_fields"]

FIELDS_FILE = "fields.npz"
MIN_POINTS = 4  # an anchor and the three neighbours of its petal (the kaleidoscope's simplex)


@dataclass
class Fields:
    """Teacher and student fields over ``N`` anchors at ``F`` times.

    Attributes:
        teacher: ``(F, N, N)`` row-stochastic ``p(j|i)``.
        student: ``(F, N, N)`` row-stochastic ``q(j|i)``.
        steps: ``(F,)`` training step (or simulation step) of each frame.
        labels: ``(N,)`` class labels, or None.
    """

    teacher: np.ndarray
    student: np.ndarray
    steps: np.ndarray
    labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.teacher = np.asarray(self.teacher, dtype=np.float64)
        self.student = np.asarray(self.student, dtype=np.float64)
        if self.teacher.ndim != 3 or self.teacher.shape[1] != self.teacher.shape[2]:
            raise ValueError(f"teacher must be (F, N, N), got shape {self.teacher.shape}")
        if self.student.shape != self.teacher.shape:
            raise ValueError(
                f"student must have the teacher's shape {self.teacher.shape}, "
                f"got {self.student.shape}"
            )
        frames, n, _ = self.teacher.shape
        if frames < 1 or n < MIN_POINTS:
            raise ValueError(
                f"the fields need at least 1 frame and {MIN_POINTS} points, got shape "
                f"{self.teacher.shape}"
            )
        for name, field in (("teacher", self.teacher), ("student", self.student)):
            if not np.isfinite(field).all() or (field < 0).any():
                raise ValueError(f"{name} must hold finite probabilities >= 0")
        self.steps = np.asarray(self.steps, dtype=np.int64).reshape(-1)
        if self.steps.shape != (frames,):
            raise ValueError(f"steps must have one entry per frame ({frames}), "
                             f"got shape {self.steps.shape}")
        if self.labels is not None:
            self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
            if self.labels.shape != (n,):
                raise ValueError(f"labels must have one entry per point ({n}), "
                                 f"got shape {self.labels.shape}")

    @property
    def n_frames(self) -> int:
        return self.teacher.shape[0]

    @property
    def n_points(self) -> int:
        return self.teacher.shape[1]


def load_fields(path: str | Path) -> Fields:
    """Read ``fields.npz`` (``steps``, ``teacher``, ``student``, optional ``labels``).

    ``path`` is the ``.npz`` file or a run directory that contains ``fields.npz`` (written by
    ``rkdo train --record-field N``).
    """
    path = Path(path)
    file = path / FIELDS_FILE if path.is_dir() else path
    if not file.exists():
        hint = (" (record them with `rkdo train --record-field N --record-every K`)"
                if path.is_dir() else "")
        raise ValueError(f"no recorded fields at {file}{hint}")
    with np.load(file) as data:
        missing = {"teacher", "student", "steps"} - set(data.files)
        if missing:
            raise ValueError(f"{file} lacks the arrays {sorted(missing)}; it holds {data.files}")
        labels = data["labels"] if "labels" in data.files else None
        return Fields(data["teacher"], data["student"], data["steps"], labels)


def save_fields(path: str | os.PathLike[str], fields: Fields) -> Path:
    """Write ``fields`` to ``path`` (a ``.npz`` file) atomically, probabilities as float32."""
    arrays = {
        "steps": fields.steps.astype(np.int64),
        "teacher": fields.teacher.astype(np.float32),
        "student": fields.student.astype(np.float32),
    }
    if fields.labels is not None:
        arrays["labels"] = fields.labels.astype(np.int64)
    return atomic_writer(path, lambda tmp: np.savez_compressed(tmp, **arrays), suffix=".npz")
