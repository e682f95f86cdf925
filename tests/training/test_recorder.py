"""The field recorder: teacher and student rows over the probe set, written as fields.npz."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from rkdo.fields import load_fields
from rkdo.training import TrainConfig, train


def test_record_field_writes_probe_fields(tmp_path: Path, fast: TrainConfig) -> None:
    run = tmp_path / "run"
    train(replace(fast, record_field=6, record_every=2), run, progress=False)
    fields = np.load(run / "fields.npz")
    assert fields["steps"].tolist() == [0, 2, 4, 6, 8]
    assert fields["teacher"].shape == fields["student"].shape == (5, 6, 6)
    np.testing.assert_allclose(fields["teacher"].sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(fields["student"].sum(-1), 1.0, atol=1e-5)
    # the in-step teacher mixes the identity with the student: not the identity any more
    assert not np.allclose(fields["teacher"][0], np.eye(6))
    assert fields["labels"].shape == (6,)
    assert load_fields(run).n_frames == 5  # the one reader of the format reads it
