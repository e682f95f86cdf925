"""Neighbourhood fields over time: the one owner of the ``fields.npz`` format.

A *field* is the pair of row-stochastic matrices a neighbourhood-KL loss compares over a fixed
set of ``N`` anchors: the teacher ``p(j|i)`` and the student ``q(j|i)``. Recorded at ``F``
times (``rkdo train --record-field N``, or :func:`rkdo.viz.simulate.simulate`) they are stored as

    fields.npz:  steps (F,) int64,  teacher (F, N, N) float32,  student (F, N, N) float32,
                 labels (N,) int64 (optional)

and drawn by :mod:`rkdo.viz.kaleidoscope`. Writes are atomic (:mod:`rkdo._io`). Reading checks
the archive before loading any array: it must be a zip of ``.npy`` members without Python objects
(never unpickled), and the memory its headers declare (``prod(shape) * 8`` bytes per
probability array once held as float64) must fit in the memory available, so a 12 MB file that
declares 25 GB is refused in one line instead of exhausting the machine.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rkdo._io import atomic_writer

if TYPE_CHECKING:
    import numpy as np

# numpy is imported where arrays are made, not here: `rkdo train --help` reads MIN_POINTS
# (through rkdo.training.config) and then starts without loading numpy

__all__ = ["FIELDS_FILE", "MIN_POINTS", "Fields", "available_memory", "load_fields", "save_fields"]

FIELDS_FILE = "fields.npz"
MIN_POINTS = 4  # an anchor and the three neighbours of its petal (the kaleidoscope's simplex)


@dataclass
class Fields:
    """Teacher and student fields over ``N`` anchors at ``F`` times.

    Attributes:
        teacher: ``(F, N, N)`` row-stochastic ``p(j|i)``.
        student: ``(F, N, N)`` row-stochastic ``q(j|i)``.
        steps: ``(F,)`` training step (or simulation step) of each frame.
        labels: ``(N,)`` class labels, or None; integer ids are kept, any other labels
            (strings, say) become the ids ``0..K-1`` of their sorted distinct values.
    """

    teacher: np.ndarray
    student: np.ndarray
    steps: np.ndarray
    labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        import numpy as np

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
            self.labels = _label_ids(self.labels)
            if self.labels.shape != (n,):
                raise ValueError(f"labels must have one entry per point ({n}), "
                                 f"got shape {self.labels.shape}")

    @property
    def n_frames(self) -> int:
        return self.teacher.shape[0]

    @property
    def n_points(self) -> int:
        return self.teacher.shape[1]


def _label_ids(labels: Any) -> np.ndarray:
    """Integer class ids of ``labels``: integers as they are, anything else by sorted value."""
    import numpy as np

    labels = np.asarray(labels).reshape(-1)
    if labels.dtype.kind in "iub":
        return labels.astype(np.int64)
    whole = labels.dtype.kind == "f" and np.isfinite(labels).all()
    if whole and (labels == np.round(labels)).all():
        return labels.astype(np.int64)
    return np.unique(labels.astype(str), return_inverse=True)[1].astype(np.int64).reshape(-1)


def available_memory() -> int | None:
    """Bytes of host memory available now (``MemAvailable`` of /proc/meminfo), None if unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _declared_arrays(file: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``{name: (shape, dtype)}`` of an ``.npz`` archive's members, read from the npy headers
    only (no array data is loaded). Raises ``ValueError`` for anything that is not such an
    archive."""
    import numpy as np

    fix = "write it with rkdo.fields.save_fields or `rkdo train --record-field N`"
    if not zipfile.is_zipfile(file):
        kind = ("a single .npy array, not an .npz archive of named arrays"
                if file.read_bytes()[:6] == b"\x93NUMPY" else "not an .npz (zip) archive")
        raise ValueError(f"{file} is {kind}; fields.npz holds the arrays teacher, student and "
                         f"steps: {fix}")
    declared = {}
    try:
        with zipfile.ZipFile(file) as archive:
            for member in archive.namelist():
                if not member.endswith(".npy"):
                    continue
                with archive.open(member) as handle:
                    version = np.lib.format.read_magic(handle)
                    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                            else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read(handle)
                declared[member.removesuffix(".npy")] = (tuple(shape), dtype)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{file} is not a readable .npz archive ({reason}); {fix}") from None
    return declared


def _check_declared(file: Path, declared: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
    """Refuse object arrays, missing arrays and arrays that cannot fit in memory."""
    import numpy as np

    objects = sorted(name for name, (_, dtype) in declared.items() if dtype.hasobject)
    if objects:
        raise ValueError(f"{file}: the arrays {objects} hold Python objects, which rkdo never "
                         "loads (they could run code); write numeric arrays with "
                         "rkdo.fields.save_fields")
    missing = {"teacher", "student", "steps"} - set(declared)
    if missing:
        raise ValueError(f"{file} lacks the arrays {sorted(missing)}; it holds {sorted(declared)}")
    # float32 as stored, then float64 in Fields: 12 bytes per probability while loading
    need = sum(int(np.prod(declared[name][0], dtype=np.float64)) * (declared[name][1].itemsize + 8)
               for name in ("teacher", "student"))
    have = available_memory()
    if have is not None and need > have:
        shapes = ", ".join(f"{name} {declared[name][0]}" for name in ("teacher", "student"))
        raise ValueError(f"{file} declares {shapes}: loading needs ~{need / 1e9:.1f} GB of "
                         f"memory, {have / 1e9:.1f} GB is available; record fewer anchors or "
                         "frames (--record-field N, --record-every K)")


def load_fields(path: str | Path) -> Fields:
    """Read ``fields.npz`` (``steps``, ``teacher``, ``student``, optional ``labels``).

    ``path`` is the ``.npz`` file or a run directory that contains ``fields.npz`` (written by
    ``rkdo train --record-field N``). The archive is checked from its headers before any array
    is loaded (module docstring); every problem is a one-line ``ValueError``.
    """
    import numpy as np

    path = Path(path)
    file = path / FIELDS_FILE if path.is_dir() else path
    if not file.is_file():
        hint = (" (record them with `rkdo train --record-field N --record-every K`)"
                if path.is_dir() else "")
        raise ValueError(f"no recorded fields at {file}{hint}")
    _check_declared(file, _declared_arrays(file))
    try:
        with np.load(file, allow_pickle=False) as data:
            labels = data["labels"] if "labels" in data.files else None
            return Fields(data["teacher"], data["student"], data["steps"], labels)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise ValueError(f"{file} is damaged ({type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else 'truncated'}); "
                         "record the fields again") from None
    except ValueError as error:
        if str(error).startswith(("teacher", "student", "steps", "labels", "the fields")):
            raise ValueError(f"{file}: {error}") from None
        raise ValueError(f"{file} is damaged ({str(error).splitlines()[0]}); record the "
                         "fields again") from None


def save_fields(path: str | os.PathLike[str], fields: Fields) -> Path:
    """Write ``fields`` to ``path`` (a ``.npz`` file) atomically, probabilities as float32."""
    import numpy as np

    arrays = {
        "steps": fields.steps.astype(np.int64),
        "teacher": fields.teacher.astype(np.float32),
        "student": fields.student.astype(np.float32),
    }
    if fields.labels is not None:
        arrays["labels"] = fields.labels.astype(np.int64)
    return atomic_writer(path, lambda tmp: np.savez_compressed(tmp, **arrays), suffix=".npz")
