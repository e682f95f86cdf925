"""Tests of rkdo.viz.encode: the shared GIF palette keeps reserved colours, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

import rkdo.viz.encode as encode
from rkdo.viz.encode import save_frames


def test_gif_round_trip_keeps_frames_and_reserved_colours(tmp_path, pixels) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8) for _ in range(3)]
    rare = np.array([[1, 2, 250]], dtype=np.uint8)
    images[1][0, 0] = rare[0]  # one pixel: median cut alone would not keep this colour
    out = save_frames(images, tmp_path / "a.gif", fps=4, reserved_colors=rare)
    frames = pixels.read_gif(out)
    assert len(frames) == 3 and frames[0].shape == (12, 16, 3)
    np.testing.assert_array_equal(frames[1][0, 0], rare[0])
    assert not list(tmp_path.glob("*.tmp*"))  # the atomic write left no temporary file


def test_mp4_without_ffmpeg_is_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(encode.shutil, "which", lambda name: None)
    image = np.zeros((10, 10, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="ffmpeg"):
        save_frames([image], tmp_path / "x.mp4")
    with pytest.raises(ValueError, match=".gif or .mp4"):
        save_frames([image], tmp_path / "x.avi")
    with pytest.raises(ValueError, match="fps"):
        save_frames([image], tmp_path / "x.gif", fps=0)
    with pytest.raises(ValueError, match="no frames"):
        save_frames([], tmp_path / "x.gif")
    with pytest.raises(ValueError, match="at most 128"):
        save_frames([image], tmp_path / "x.gif", reserved_colors=np.zeros((129, 3), np.uint8))
