"""The ``DATA`` argument of ``rkdo embed`` / ``rkdo cluster``: names, files, run directories."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rkdo.cli.features import class_names, load_features, prepared


@pytest.mark.parametrize("data, message", [
    ("mnist", "DATA must be"), ("missing.npy", "does not exist"), ("table.txt", "DATA must be"),
])
def test_bad_data_is_one_clear_error(data: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_features(data)


def test_one_dimensional_npy_rejected(tmp_path) -> None:
    np.save(tmp_path / "flat.npy", np.arange(5.0))
    with pytest.raises(ValueError, match="2-D numeric"):
        load_features(str(tmp_path / "flat.npy"))


def test_class_names_of_a_dataset_or_a_runs_dataset(tmp_path) -> None:
    from rkdo.vision.data import load

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps({"dataset": "digits"}))
    assert class_names(str(tmp_path / "run")) == list(load("digits").classes)
    assert class_names("digits") == list(load("digits").classes)
    assert class_names(str(tmp_path / "x.npy")) is None


def test_prepared_subsets_and_scales_by_a_power_of_two(tmp_path) -> None:
    x = np.random.default_rng(0).standard_normal((40, 3)) * 3e7
    np.save(tmp_path / "x.npy", x)
    scaled, labels = prepared(str(tmp_path / "x.npy"), "embed", device="cpu", max_points=None,
                              seed=0)
    exponent = math.frexp(np.abs(x).max())[1]  # largest |x| = m 2^e, m in [0.5, 1)
    assert labels is None and np.array_equal(scaled, x / 2.0**exponent)
    assert 0.5 <= np.abs(scaled).max() < 1.0
    subset, _ = prepared(str(tmp_path / "x.npy"), "embed", device="cpu", max_points=10, seed=3)
    chosen = np.sort(np.random.default_rng(3).permutation(40)[:10])
    assert np.array_equal(subset, x[chosen] / 2.0**math.frexp(np.abs(x[chosen]).max())[1])
    np.save(tmp_path / "few.npy", x[:3])
    with pytest.raises(ValueError, match="too few points: .*few.npy has 3 rows; cluster needs"):
        prepared(str(tmp_path / "few.npy"), "cluster", device="cpu", max_points=None, seed=0)
