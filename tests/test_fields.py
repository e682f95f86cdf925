"""Tests of rkdo.fields: the fields.npz format round trip and its validation messages."""

from __future__ import annotations

import numpy as np
import pytest

from rkdo.fields import FIELDS_FILE, Fields, load_fields, save_fields


def _fields(labels: np.ndarray | None = None) -> Fields:
    rng = np.random.default_rng(0)
    teacher = rng.dirichlet(np.ones(5), size=(3, 5))
    student = rng.dirichlet(np.ones(5), size=(3, 5))
    return Fields(teacher, student, [0, 10, 20], labels)


@pytest.mark.parametrize("labels", [None, np.array([0, 1, 1, 2, 0])])
def test_save_then_load_gives_the_fields_back_in_the_file_types(tmp_path, labels) -> None:
    fields = _fields(labels)
    path = save_fields(tmp_path / FIELDS_FILE, fields)
    with np.load(path) as data:
        assert data["teacher"].dtype == np.float32 and data["student"].dtype == np.float32
        assert data["steps"].dtype == np.int64
        assert ("labels" in data.files) == (labels is not None)
    for source in (path, tmp_path):  # the file or the run directory that holds it
        loaded = load_fields(source)
        np.testing.assert_allclose(loaded.teacher, fields.teacher, rtol=1e-6)
        np.testing.assert_allclose(loaded.student, fields.student, rtol=1e-6)
        np.testing.assert_array_equal(loaded.steps, fields.steps)
        if labels is None:
            assert loaded.labels is None
        else:
            np.testing.assert_array_equal(loaded.labels, labels)
    assert not list(tmp_path.glob("*.tmp*"))


def test_missing_files_and_arrays_say_what_to_do(tmp_path) -> None:
    with pytest.raises(ValueError, match="--record-field"):
        load_fields(tmp_path)
    np.savez(tmp_path / "partial.npz", teacher=np.ones((1, 4, 4)))
    with pytest.raises(ValueError, match="lacks the arrays"):
        load_fields(tmp_path / "partial.npz")


def test_fields_validation() -> None:
    good = _fields()
    with pytest.raises(ValueError, match="student must have"):
        Fields(good.teacher, good.student[:, :4, :4], good.steps)
    with pytest.raises(ValueError, match="steps"):
        Fields(good.teacher, good.student, [0])
    with pytest.raises(ValueError, match=">= 0"):
        Fields(-good.teacher, good.student, good.steps)
    with pytest.raises(ValueError, match="at least 1 frame and 4 points"):
        Fields(good.teacher[:, :3, :3], good.student[:, :3, :3], good.steps)
    with pytest.raises(ValueError, match="labels"):
        Fields(good.teacher, good.student, good.steps, [0, 1])
