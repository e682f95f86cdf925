"""The ``DATA`` argument of ``rkdo embed`` and ``rkdo cluster``: features and labels.

``DATA`` is a dataset name (``digits``, ``fashion-mnist``: train and test splits together,
pixels in [0, 1]), a ``.npy`` or ``.csv`` file of one row per point, or a run directory (the
trained encoder's backbone features of its test split). A CSV has a header exactly when every
field of its first line is non-numeric; errors name the file's own line number, and rows with
NaN or infinite values are refused. :func:`prepared` also draws a ``--max-points`` subset and
multiplies the features by a power of two (exact) that brings their largest magnitude near one:
both estimators are invariant to a global scale, and data of magnitude 1e200 or 1e-200 would
otherwise overflow or underflow. rkdo's own modules are imported when a command runs.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from rkdo.estimators._embedding_defaults import MIN_SAMPLES

__all__ = ["DATASETS", "load_features", "class_names", "prepared"]

DATASETS = ("digits", "fashion-mnist")


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _read_csv(path: Path) -> np.ndarray:
    """Rows of floats; a header when every field of the first line is non-numeric."""
    with open(path, newline="") as handle:
        lines = [(number, row) for number, row in enumerate(csv.reader(handle), start=1)
                 if row and any(field.strip() for field in row)]
    if not lines:
        raise ValueError(f"{path} holds no rows")
    first_number, first = lines[0]
    if all(not _is_number(field) for field in first):
        lines = lines[1:]  # a header: its fields are names, not numbers
    if not lines:
        raise ValueError(f"{path} holds a header and no rows")
    width = len(lines[0][1])
    rows = []
    for number, fields in lines:
        if len(fields) != width:
            raise ValueError(f"{path}:{number}: {len(fields)} fields where line "
                             f"{lines[0][0]} has {width} (a stray or trailing comma?)")
        try:
            rows.append(np.array(fields, dtype=np.float64))
        except ValueError:
            bad = next(i for i, field in enumerate(fields) if not _is_number(field))
            raise ValueError(f"{path}:{number}: field {bad + 1} ({fields[bad]!r}) is not a "
                             "number") from None
    array = np.vstack(rows)
    _check_finite(array, path, [number for number, _ in lines])
    return array


def _check_finite(array: np.ndarray, path: Path, line_numbers: list[int] | None = None) -> None:
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if bad.size:
        where = (f"line {line_numbers[bad[0]]}" if line_numbers is not None
                 else f"row {bad[0]} (0-based)")
        raise ValueError(f"{path}: {where} holds NaN or infinite values ({bad.size} rows in "
                         "all); remove or impute them")


def _read_table(path: Path) -> np.ndarray:
    if path.suffix == ".csv":
        return _read_csv(path)
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise ValueError(f"{path} is not a readable .npy array ({error.__class__.__name__}); "
                         "save it with numpy.save") from None
    if np.iscomplexobj(array):
        raise ValueError(f"{path} holds complex numbers; embed real features (e.g. stack the "
                         "real and imaginary parts as columns)")
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{path} must hold a 2-D numeric array (one row per point), "
                         f"got shape {array.shape} of {array.dtype}")
    array = array.astype(np.float64)
    _check_finite(array, path)
    return array


def _run_features(path: Path, device: str) -> tuple[np.ndarray, np.ndarray]:
    import torch

    from rkdo.evaluation import extract_features
    from rkdo.training import load_run

    run = load_run(path, device=device)
    image_size = getattr(run.config, "image_size", None)
    options = {} if image_size is None else {"image_size": image_size}
    features = extract_features(run.model, run.data.test.images, **options)
    labels = torch.as_tensor(run.data.test.labels).numpy()
    return np.asarray(features.cpu().numpy(), dtype=np.float64), labels


def load_features(data: str, *, device: str = "cpu") -> tuple[np.ndarray, np.ndarray | None]:
    """``(features (n, d), labels or None)`` for a ``DATA`` argument (module docstring)."""
    if data in DATASETS:
        import torch

        from rkdo.vision.data import load

        splits = load(data)
        images = torch.cat([splits.train.images, splits.test.images]).flatten(1)
        labels = torch.cat([torch.as_tensor(splits.train.labels),
                            torch.as_tensor(splits.test.labels)])
        return images.numpy().astype(np.float64) / 255.0, labels.numpy()
    path = Path(data)
    if path.is_dir():
        return _run_features(path, device)
    if path.suffix in (".npy", ".csv"):
        if not path.exists():
            raise ValueError(f"DATA file {path} does not exist")
        return _read_table(path), None
    raise ValueError(f"DATA must be one of {', '.join(DATASETS)}, a .npy or .csv file, or a run "
                     f"directory; got {data!r}")


def class_names(data: str) -> list[str] | None:
    """The class names of a dataset named by ``DATA`` (a dataset name or a run directory)."""
    dataset = data
    config = Path(data) / "config.json"
    if config.is_file():
        dataset = json.loads(config.read_text()).get("dataset", "")
    if dataset not in DATASETS:
        return None
    from rkdo.vision.data import load

    return list(load(dataset).classes) or None


def _unit_scale(x: np.ndarray) -> np.ndarray:
    """``x`` times the power of two that puts its largest magnitude in [0.5, 1)."""
    largest = float(np.max(np.abs(x))) if x.size else 0.0
    if largest == 0.0 or not math.isfinite(largest):
        return x
    return np.ldexp(x, -math.frexp(largest)[1])


def prepared(data: str, command: str, *, device: str, max_points: int | None, seed: int
             ) -> tuple[np.ndarray, np.ndarray | None]:
    """``DATA``'s features, at most ``max_points`` of them (a random subset drawn with
    ``seed``), scaled to unit magnitude (module docstring), and their labels or None."""
    x, labels = load_features(data, device=device)
    # both commands: the embedding's minimum (KernelClustering alone would take 2 points)
    if len(x) < MIN_SAMPLES:
        raise ValueError(f"too few points: {data} has {len(x)} rows; {command} needs at "
                         f"least {MIN_SAMPLES}")
    if max_points is not None and len(x) > max_points:
        chosen = np.sort(np.random.default_rng(seed).permutation(len(x))[:max_points])
        x, labels = x[chosen], None if labels is None else labels[chosen]
    return _unit_scale(x), labels
