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


def _npy_header(shape: tuple[int, ...], dtype: str) -> bytes:
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_2_0(
        buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return np.lib.format.magic(2, 0) + buffer.getvalue()[8:]


def test_an_archive_declaring_more_memory_than_the_machine_has_is_refused_unloaded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's file: teacher and student each declare 6.4 GB (float32) in 12 MB on disk;
    the check reads the npy headers only, so nothing of that size is ever allocated."""
    import zipfile

    import rkdo.fields as fields_module

    path = tmp_path / "fields.npz"
    shape = (100, 4000, 4000)  # 1.6e9 float32 = 6.4 GB
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in ("teacher", "student"):
            archive.writestr(f"{name}.npy", _npy_header(shape, "<f4") + bytes(6_000_000))
        archive.writestr("steps.npy", _npy_header((100,), "<i8") + bytes(800))
    assert path.stat().st_size < 13e6
    monkeypatch.setattr(fields_module, "available_memory", lambda: 23 * 10**9)
    with pytest.raises(ValueError, match=r"teacher \(100, 4000, 4000\).*needs ~38\.4 GB of "
                                         r"memory, 23\.0 GB is available; record fewer"):
        load_fields(path)
    # the same archive with the memory to hold it goes on to the arrays (here: too short)
    monkeypatch.setattr(fields_module, "available_memory", lambda: 10**14)
    with pytest.raises(ValueError, match="is damaged"):
        load_fields(path)


@pytest.mark.parametrize("kind", ["npy", "truncated", "random", "pickle", "bad-member"])
def test_files_that_are_not_fields_get_one_line_without_numpys_pickle_advice(
        tmp_path: Path, kind: str) -> None:
    good = save_fields(tmp_path / "good.npz", _fields())
    path = tmp_path / f"{kind}.npz"
    if kind == "npy":
        path = tmp_path / "x.npy"
        np.save(path, _stochastic(2, 5, 0))
    elif kind == "truncated":
        path.write_bytes(good.read_bytes()[:200])
    elif kind == "random":
        path.write_bytes(np.random.default_rng(1).bytes(5000))
    elif kind == "pickle":
        np.savez(path, teacher=np.array([{"a": 1}], dtype=object), student=_stochastic(1, 5, 0),
                 steps=np.arange(1))
    else:  # a member whose compressed data is corrupt (CRC)
        data = bytearray(good.read_bytes())
        data[300:340] = bytes(40)
        path.write_bytes(bytes(data))
    expected = {"npy": "a single .npy array", "truncated": r"not an \.npz \(zip\) archive",
                "random": r"not an \.npz \(zip\) archive", "pickle": "hold Python objects",
                "bad-member": "damaged|not a readable"}[kind]
    with pytest.raises(ValueError, match=expected) as error:
        load_fields(path)
    message = str(error.value)
    assert "\n" not in message and "allow_pickle" not in message and "pickle.load" not in message


def test_string_labels_become_class_ids(tmp_path: Path) -> None:
    path = tmp_path / "fields.npz"
    np.savez(path, teacher=_stochastic(2, 4, 0), student=_stochastic(2, 4, 1),
             steps=np.arange(2), labels=np.array(["shirt", "bag", "shirt", "coat"]))
    np.testing.assert_array_equal(load_fields(path).labels, [2, 0, 2, 1])
