"""Tests of rkdo.viz.kaleidoscope: rendered pixels where the layout puts things, and colours."""

from __future__ import annotations

import numpy as np
import pytest

from rkdo.viz.encode import save_frames
from rkdo.viz.kaleidoscope import (
    NATURAL_COLOR,
    STUDENT_COLOR,
    TEACHER_COLOR,
    THEMES,
    Kaleidoscope,
)


def _expected_edge_color(fields, frame: int, i: int, j: int, n: int) -> np.ndarray:
    from matplotlib import colormaps

    off = ~np.eye(n, dtype=bool)
    # rows conditioned on j != i: the diagonal removed, each row renormalised
    p, q = (np.where(off, f, 0) / np.where(off, f, 0).sum(-1, keepdims=True)
            for f in (fields.teacher, fields.student))
    terms = (p[:, off] * np.log(p[:, off] / q[:, off]))
    limit = np.quantile(np.abs(terms), 0.98)
    term = p[frame, i, j] * np.log(p[frame, i, j] / q[frame, i, j])
    value = np.clip((term / limit + 1) / 2, 0, 1)
    return np.round(255 * np.array(colormaps["coolwarm"](value)[:3]))


def test_rendered_gif_shows_nodes_edges_and_dots_where_they_belong(
    tmp_path, circulant, pixels
) -> None:
    fields, n = circulant.fields(), circulant.N
    dpi = 100
    kaleidoscope = Kaleidoscope(fields, dpi=dpi, theme="dark")
    layout = kaleidoscope.layout
    out = save_frames(list(kaleidoscope.frames()), tmp_path / "k.gif", fps=5)
    frames = pixels.read_gif(out)
    assert len(frames) == 2
    assert frames[0].shape == (round(7.4 * dpi), round(7.6 * dpi), 3)
    theme = THEMES["dark"]
    assert pixels.close(frames[0][2, 2], theme["background"], 8)
    for frame, image in enumerate(frames):
        for i in range(n):
            # node i at its place on the circle, in the node colour
            assert pixels.close(image[kaleidoscope.to_pixel(layout.node_xy[i])], theme["node"])
            # red and blue dots at the barycentric images of the restricted p and q
            assert pixels.close(image[kaleidoscope.to_pixel(layout.p_xy[frame, i])],
                                TEACHER_COLOR)
            assert pixels.close(image[kaleidoscope.to_pixel(layout.q_xy[frame, i])],
                                STUDENT_COLOR)
            # the edge i -> i+1 (the heaviest student edge) in its KL-term colour
            middle = kaleidoscope.to_pixel(layout.edge_midpoint(i, (i + 1) % n))
            assert pixels.close(image[middle],
                                _expected_edge_color(fields, frame, i, (i + 1) % n, n))
    # the teacher dot moved: where it was in frame 0 there is no red in frame 1
    assert not pixels.close(frames[1][kaleidoscope.to_pixel(layout.p_xy[0, 0])], TEACHER_COLOR)
    # frame 0's edge 0->1 is red (p > q), frame 1's blue (p < q): the colour follows the KL term
    middle = kaleidoscope.to_pixel(layout.edge_midpoint(0, 1))
    before, after = frames[0][middle].astype(int), frames[1][middle].astype(int)
    assert before[0] > before[2] + 60 and after[2] > after[0] + 20


def test_split_view_draws_teacher_widths_on_the_right_with_label_colours(
    circulant, pixels
) -> None:
    from matplotlib import colormaps

    n = circulant.N
    labels = np.array([0, 0, 1, 1, 2, 2])
    kaleidoscope = Kaleidoscope(circulant.fields(labels), split=True, dpi=60, theme="light")
    image = kaleidoscope.render(0)
    assert image.shape == (round(7.0 * 60), round(13.0 * 60), 3)
    for panel in (0, 1):
        for i in range(n):
            pixel = image[kaleidoscope.to_pixel(kaleidoscope.layout.node_xy[i], panel)]
            tab = np.round(255 * np.array(colormaps["tab10"](labels[i])[:3]))
            assert pixels.close(pixel, tab)
    # edge 0 -> 2: q = 0.2 (visible on the left), p = 0.05 at frame 0 (thin on the right)
    widths = [kaleidoscope.panels[k]["edges"].get_linewidths() for k in (0, 1)]
    kaleidoscope.update(0)
    student_width = np.sort(kaleidoscope.panels[0]["edges"].get_linewidths())
    teacher_width = np.sort(kaleidoscope.panels[1]["edges"].get_linewidths())
    # widths: the rows conditioned on j != i (without the anchor's own mass)
    student_row = circulant.STUDENT_ROW[1:] / circulant.STUDENT_ROW[1:].sum()
    teacher_rows = [row[1:] / row[1:].sum() for row in circulant.TEACHER_ROWS]
    scale = 5.0 / max(student_row.max(), *(row.max() for row in teacher_rows))
    np.testing.assert_allclose(student_width, np.sort(np.tile(student_row, n)) * scale)
    np.testing.assert_allclose(teacher_width, np.sort(np.tile(teacher_rows[0], n)) * scale)
    # node areas: the mass on the anchor itself, q(i|i) = 0.3 left, p(i|i) = 0.2 right
    np.testing.assert_allclose(kaleidoscope.panels[0]["nodes"].get_sizes(), 40 + 500 * 0.3)
    np.testing.assert_allclose(kaleidoscope.panels[1]["nodes"].get_sizes(), 40 + 500 * 0.2)
    assert widths  # the collections exist in both panels


def test_natural_arrow_is_green_and_starts_under_the_student_dot(circulant, pixels) -> None:
    kaleidoscope = Kaleidoscope(circulant.fields(), dpi=40)
    kaleidoscope.update(0)
    quiver = kaleidoscope.panels[0]["natural"]
    np.testing.assert_allclose(quiver.get_offsets()[0], kaleidoscope.layout.q_xy[0, 0])
    np.testing.assert_allclose(quiver.U[0], kaleidoscope.layout.natural[0, 0, 0])
    assert pixels.close(np.round(255 * np.array(quiver.get_facecolor()[0][:3])), NATURAL_COLOR,
                        1)


def test_bad_options_name_themselves(circulant) -> None:
    good = circulant.fields()
    with pytest.raises(ValueError, match="nodes must be"):
        Kaleidoscope(good, nodes=7)
    with pytest.raises(ValueError, match="theme"):
        Kaleidoscope(good, theme="neon")
    with pytest.raises(ValueError, match="dpi"):
        Kaleidoscope(good, dpi=0)
    with pytest.raises(ValueError, match="frame must lie"):
        Kaleidoscope(good, dpi=30).update(2)


def test_save_writes_every_frame_and_reports_it(tmp_path, circulant, pixels) -> None:
    fields = circulant.fields()
    rendering = Kaleidoscope(fields, dpi=30, split=True).save(tmp_path / "out" / "k.gif")
    frames = pixels.read_gif(rendering.path)
    assert (rendering.frames, rendering.nodes) == (2, circulant.N)
    assert frames[0].shape == (rendering.height, rendering.width, 3) == (210, 390, 3)
    # the same figure, rendered directly, gives the same picture up to the GIF palette
    direct = Kaleidoscope(fields, dpi=30, split=True).render(1)
    assert np.abs(direct.astype(int) - frames[1].astype(int)).max(axis=-1).mean() < 4
