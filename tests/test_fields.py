"""rkdo.fields: fields.npz round trips (float32 probabilities, int64 steps and labels) and
malformed fields are refused with their shapes named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rkdo.fields import FIELDS_FILE, MIN_POINTS, Fields, load_fields, save_fields


def _stochastic(frames: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mass = rng.random((frames, n, n))
    return mass / mass.sum(axis=-1, keepdims=True)


def _fields(frames: int = 3, n: int = 5, labels: bool = True) -> Fields:
    return Fields(
        teacher=_stochastic(frames, n, 0),
        student=_stochastic(frames, n, 1),
        steps=np.arange(frames) * 10,
        labels=np.arange(n) % 2 if labels else None,
    )


@pytest.mark.parametrize("labels", [True, False])
def test_save_load_round_trip(tmp_path: Path, labels: bool) -> None:
    fields = _fields(labels=labels)
    path = save_fields(tmp_path / FIELDS_FILE, fields)
    assert sorted(p.name for p in tmp_path.iterdir()) == [FIELDS_FILE]  # no .tmp left
    for loaded in (load_fields(path), load_fields(tmp_path)):  # the file, or its run directory
        assert (loaded.n_frames, loaded.n_points) == (3, 5)
        np.testing.assert_allclose(loaded.teacher, fields.teacher, rtol=1e-6)
        np.testing.assert_allclose(loaded.student, fields.student, rtol=1e-6)
        np.testing.assert_array_equal(loaded.steps, [0, 10, 20])
        if labels:
            np.testing.assert_array_equal(loaded.labels, [0, 1, 0, 1, 0])
        else:
            assert loaded.labels is None
    with np.load(path) as data:
        assert data["teacher"].dtype == np.float32 and data["steps"].dtype == np.int64


def test_missing_fields_say_how_to_record_them(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no recorded fields at .*--record-field N"):
        load_fields(tmp_path)
    with pytest.raises(ValueError, match="no recorded fields at"):
        load_fields(tmp_path / "other.npz")


def test_a_file_without_the_arrays_is_named(tmp_path: Path) -> None:
    path = tmp_path / "fields.npz"
    np.savez(path, teacher=_stochastic(1, 4, 0))
    with pytest.raises(ValueError, match=r"lacks the arrays \['steps', 'student'\]"):
        load_fields(path)


def test_shape_errors_name_the_shapes() -> None:
    good = _fields()
    with pytest.raises(ValueError, match=r"teacher must be \(F, N, N\), got shape \(3, 5, 4\)"):
        Fields(good.teacher[:, :, :4], good.student, good.steps)
    with pytest.raises(ValueError, match=r"student must have the teacher's shape \(3, 5, 5\)"):
        Fields(good.teacher, good.student[:2], good.steps)
    with pytest.raises(ValueError, match=rf"at least 1 frame and {MIN_POINTS} points"):
        Fields(_stochastic(2, MIN_POINTS - 1, 0), _stochastic(2, MIN_POINTS - 1, 1), [0, 1])
    with pytest.raises(ValueError, match=r"steps must have one entry per frame \(3\)"):
        Fields(good.teacher, good.student, [0, 1])
    with pytest.raises(ValueError, match=r"labels must have one entry per point \(5\)"):
        Fields(good.teacher, good.student, good.steps, labels=[0, 1])


def test_probabilities_must_be_finite_and_non_negative() -> None:
    good = _fields()
    bad = good.student.copy()
    bad[0, 0, 0] = -0.1
    with pytest.raises(ValueError, match="student must hold finite probabilities >= 0"):
        Fields(good.teacher, bad, good.steps)
    bad = good.teacher.copy()
    bad[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="teacher must hold finite probabilities >= 0"):
        Fields(bad, good.student, good.steps)
