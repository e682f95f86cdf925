"""Tests of rkdo.viz: rendered pixels, the GIF round trip, the CLI on a fake run, plots."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from PIL import Image

from rkdo.viz.kaleidoscope import (
    NATURAL_COLOR,
    STUDENT_COLOR,
    TEACHER_COLOR,
    THEMES,
    Fields,
    Kaleidoscope,
    load_fields,
    save_frames,
    select_nodes,
)

N = 6
# row i puts these masses on i, i+1, ..., i+5 (mod N)
STUDENT_ROW = np.array([0.30, 0.30, 0.20, 0.12, 0.05, 0.03])
TEACHER_ROWS = [np.array([0.20, 0.60, 0.05, 0.05, 0.05, 0.05]),   # frame 0: on i+1
                np.array([0.20, 0.05, 0.60, 0.05, 0.05, 0.05])]   # frame 1: on i+2


def _circulant(row: np.ndarray) -> np.ndarray:
    return np.stack([np.roll(row, i) for i in range(len(row))])


def _fields(labels=None) -> Fields:
    teacher = np.stack([_circulant(r) for r in TEACHER_ROWS])
    student = np.stack([_circulant(STUDENT_ROW)] * 2)
    return Fields(teacher, student, np.array([0, 10]), labels)


def _rgb(color: str) -> np.ndarray:
    return np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)])


def _close(pixel: np.ndarray, color, tolerance: int = 40) -> bool:
    color = _rgb(color) if isinstance(color, str) else np.asarray(color)
    return int(np.abs(pixel.astype(int) - color).max()) <= tolerance


def _read_gif(path) -> list[np.ndarray]:
    frames = []
    with Image.open(path) as gif:
        for index in range(gif.n_frames):
            gif.seek(index)
            frames.append(np.asarray(gif.convert("RGB")))
    return frames


def _expected_edge_color(fields: Fields, frame: int, i: int, j: int) -> np.ndarray:
    from matplotlib import colormaps

    p, q = fields.teacher, fields.student
    off = ~np.eye(N, dtype=bool)
    terms = (p * np.log(p / q))[:, off]
    limit = np.quantile(np.abs(terms), 0.995)
    term = p[frame, i, j] * np.log(p[frame, i, j] / q[frame, i, j])
    value = np.clip((term / limit + 1) / 2, 0, 1)
    return np.round(255 * np.array(colormaps["coolwarm"](value)[:3]))


def test_rendered_gif_shows_nodes_edges_and_dots_where_they_belong(tmp_path) -> None:
    fields = _fields()
    dpi = 100
    kaleidoscope = Kaleidoscope(fields, dpi=dpi, theme="dark")
    out = save_frames(list(kaleidoscope.frames()), tmp_path / "k.gif", fps=5)
    frames = _read_gif(out)
    assert len(frames) == 2
    assert frames[0].shape == (round(7.4 * dpi), round(7.6 * dpi), 3)
    theme = THEMES["dark"]
    assert _close(frames[0][2, 2], theme["background"], 8)

    # edge i -> j runs on the left of the chord from node i to node j
    for i, j in [(0, 1), (1, 0), (2, 5), (5, 2)]:
        chord = kaleidoscope.node_xy[j] - kaleidoscope.node_xy[i]
        side = kaleidoscope.edge_midpoint(i, j) - kaleidoscope.node_xy[i]
        assert chord[0] * side[1] - chord[1] * side[0] > 0
    # petal vertices: the top-3 neighbours by time-averaged (p + q)/2 are i+1, i+2, i+3
    np.testing.assert_array_equal(kaleidoscope.neighbours[0], [1, 2, 3])
    for frame, image in enumerate(frames):
        for i in range(N):
            # node i at its place on the circle, in the node colour
            assert _close(image[kaleidoscope.to_pixel(kaleidoscope.node_xy[i])], theme["node"])
            # red and blue dots at the barycentric images of the restricted p and q
            neighbours = kaleidoscope.neighbours[i]
            p = fields.teacher[frame, i, neighbours] / fields.teacher[frame, i, neighbours].sum()
            q = fields.student[frame, i, neighbours] / fields.student[frame, i, neighbours].sum()
            p_xy = p @ kaleidoscope.petal_vertices[i]
            q_xy = q @ kaleidoscope.petal_vertices[i]
            np.testing.assert_allclose(kaleidoscope.p_xy[frame, i], p_xy, atol=1e-12)
            assert _close(image[kaleidoscope.to_pixel(p_xy)], TEACHER_COLOR)
            assert _close(image[kaleidoscope.to_pixel(q_xy)], STUDENT_COLOR)
            # the edge i -> i+1 (the heaviest student edge) in its KL-term colour
            middle = kaleidoscope.to_pixel(kaleidoscope.edge_midpoint(i, (i + 1) % N))
            assert _close(image[middle], _expected_edge_color(fields, frame, i, (i + 1) % N))
    # the teacher dot moved: where it was in frame 0 there is no red in frame 1
    assert not _close(frames[1][kaleidoscope.to_pixel(kaleidoscope.p_xy[0, 0])], TEACHER_COLOR)
    # frame 0's edge 0->1 is red (p > q), frame 1's blue (p < q): the colour follows the KL term
    middle = kaleidoscope.to_pixel(kaleidoscope.edge_midpoint(0, 1))
    before, after = frames[0][middle].astype(int), frames[1][middle].astype(int)
    assert before[0] > before[2] + 60 and after[2] > after[0] + 20


def test_split_view_draws_teacher_widths_on_the_right_with_label_colours() -> None:
    from matplotlib import colormaps

    labels = np.array([0, 0, 1, 1, 2, 2])
    fields = _fields(labels)
    kaleidoscope = Kaleidoscope(fields, split=True, dpi=60, theme="light")
    image = kaleidoscope.render(0)
    assert image.shape == (round(7.0 * 60), round(13.0 * 60), 3)
    for panel in (0, 1):
        for i in range(N):
            pixel = image[kaleidoscope.to_pixel(kaleidoscope.node_xy[i], panel)]
            tab = np.round(255 * np.array(colormaps["tab10"](labels[i])[:3]))
            assert _close(pixel, tab)
    # edge 0 -> 2: q = 0.2 (visible on the left), p = 0.05 at frame 0 (thin on the right)
    widths = [kaleidoscope.panels[k]["edges"].get_linewidths() for k in (0, 1)]
    kaleidoscope.update(0)
    student_width = np.sort(kaleidoscope.panels[0]["edges"].get_linewidths())
    teacher_width = np.sort(kaleidoscope.panels[1]["edges"].get_linewidths())
    scale = 5.0 / 0.6  # max_width / largest off-diagonal entry of p or q
    np.testing.assert_allclose(student_width, np.sort(np.tile(STUDENT_ROW[1:], N)) * scale)
    np.testing.assert_allclose(teacher_width, np.sort(np.tile(TEACHER_ROWS[0][1:], N)) * scale)
    assert widths  # the collections exist in both panels


def test_arrows_point_along_p_minus_q_and_the_natural_direction() -> None:
    from rkdo.geometry import natural_direction

    fields = _fields()
    kaleidoscope = Kaleidoscope(fields, dpi=40)
    neighbours = kaleidoscope.neighbours[0]
    p = fields.teacher[0, 0, neighbours] / fields.teacher[0, 0, neighbours].sum()
    q = fields.student[0, 0, neighbours] / fields.student[0, 0, neighbours].sum()
    vertices = kaleidoscope.petal_vertices[0]
    euclidean = (p - q) @ vertices
    natural = natural_direction(p, q).numpy() @ vertices

    def unit(v):
        return v / np.linalg.norm(v)

    np.testing.assert_allclose(unit(kaleidoscope.euclidean[0, 0]), unit(euclidean), atol=1e-12)
    np.testing.assert_allclose(unit(kaleidoscope.natural[0, 0]), unit(natural), atol=1e-12)
    # the natural arrow is drawn in green, starting under the blue dot
    kaleidoscope.update(0)
    quiver = kaleidoscope.panels[0]["natural"]
    np.testing.assert_allclose(quiver.get_offsets()[0], kaleidoscope.q_xy[0, 0])
    assert _close(np.round(255 * np.array(quiver.get_facecolor()[0][:3])), NATURAL_COLOR, 1)


def test_fields_validation_and_node_selection() -> None:
    good = _fields()
    with pytest.raises(ValueError, match="student must have"):
        Fields(good.teacher, good.student[:, :5, :5], good.steps)
    with pytest.raises(ValueError, match="steps"):
        Fields(good.teacher, good.student, [0])
    with pytest.raises(ValueError, match=">= 0"):
        Fields(-good.teacher, good.student, good.steps)
    with pytest.raises(ValueError, match="nodes must be"):
        Kaleidoscope(good, nodes=7)
    with pytest.raises(ValueError, match="theme"):
        Kaleidoscope(good, theme="neon")
    np.testing.assert_array_equal(select_nodes(10, 4), [0, 1, 2, 3])
    labels = np.array([2, 0, 0, 1, 1, 1, 0, 2, 2, 2])
    # round-robin over classes 0, 1, 2: 1, 3, 0 then 2, 4, 7; sorted by (label, index)
    np.testing.assert_array_equal(select_nodes(10, 6, labels), [1, 2, 3, 4, 0, 7])


def test_subset_of_probes_is_renormalised_per_row() -> None:
    rng = np.random.default_rng(0)
    teacher = rng.dirichlet(np.ones(9), size=(3, 9))
    student = rng.dirichlet(np.ones(9), size=(3, 9))
    fields = Fields(teacher, student, np.arange(3))
    kaleidoscope = Kaleidoscope(fields, nodes=5, dpi=30)
    block = teacher[:, :5, :5]
    np.testing.assert_allclose(kaleidoscope.teacher, block / block.sum(-1, keepdims=True))


def test_mp4_without_ffmpeg_is_a_clear_error(tmp_path, monkeypatch) -> None:
    import rkdo.viz.kaleidoscope as module

    monkeypatch.setattr(module.shutil, "which", lambda name: None)
    image = np.zeros((10, 10, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="ffmpeg"):
        save_frames([image], tmp_path / "x.mp4")
    with pytest.raises(ValueError, match=".gif or .mp4"):
        save_frames([image], tmp_path / "x.avi")


def _fake_run(directory, frames: int = 5, probes: int = 10, seed: int = 0):
    """A run directory in the trainer's on-disk format (fields.npz, metrics.jsonl, ...)."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True)
    logits = rng.normal(size=(frames, probes, probes)) + 3 * np.eye(probes)
    student = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    teacher = 0.5 * np.eye(probes) + 0.5 * student[0]
    teacher = np.broadcast_to(teacher, student.shape)
    np.savez_compressed(directory / "fields.npz", steps=np.arange(frames, dtype=np.int64) * 20,
                        teacher=teacher.astype(np.float32), student=student.astype(np.float32),
                        labels=np.arange(probes, dtype=np.int64) % 3)
    lines = []
    for step in range(10, 101, 10):
        lines.append({"step": step, "epoch": step / 50, "loss": 2.0 - 0.01 * step - 0.1 * seed,
                      "lr": 1e-3, "images_per_s": 500.0})
        if step % 50 == 0:
            lines.append({"kind": "epoch", "step": step, "epoch": step // 50, "mean_loss": 1.5})
            lines.append({"kind": "eval", "epoch": step // 50, "step": step,
                          "linear_probe": 0.5 + step / 1000 + 0.05 * seed,
                          "knn_acc_20": 0.4 + 0.1 * seed, "nmi": 0.3 - 0.1 * seed,
                          "heldout_icon_loss": 2.5 + seed})
    (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (directory / "config.json").write_text(json.dumps({"method": "rkdo", "dataset": "digits"}))
    (directory / "eval.json").write_text(json.dumps({"epoch": 2, "step": 100,
                                                     "linear_probe": 0.6}))
    return directory


def test_kaleidoscope_cli_on_a_recorded_run(tmp_path, capsys) -> None:
    from rkdo.cli.viz import main

    run = _fake_run(tmp_path / "run")
    out = tmp_path / "run.gif"
    code = main(["kaleidoscope", "--run", str(run), "--split", "--nodes", "6", "--dpi", "40",
                 "--frames", "3", "--out", str(out)])
    assert code == 0
    assert "3 frames" in capsys.readouterr().out
    frames = _read_gif(out)
    assert len(frames) == 3 and frames[0].shape == (280, 520, 3)
    fields = load_fields(run)
    assert fields.teacher.shape == (5, 10, 10)
    # the frames differ (the student field changes); the teacher dot that is farthest from its
    # student dot in the last frame is red where the same figure geometry puts it
    assert not np.array_equal(frames[0], frames[2])
    same = Kaleidoscope(fields, nodes=6, split=True, dpi=40, frames=3)
    np.testing.assert_array_equal(same.steps, [0, 40, 80])
    node = int(np.argmax(np.linalg.norm(same.p_xy[2] - same.q_xy[2], axis=-1)))
    for panel in (0, 1):
        assert _close(frames[2][same.to_pixel(same.p_xy[2, node], panel)], TEACHER_COLOR)
    # a run without recorded fields: exit code 2 and a hint, no traceback
    (tmp_path / "bare").mkdir()
    assert main(["kaleidoscope", "--run", str(tmp_path / "bare"), "--out",
                 str(tmp_path / "x.gif")]) == 2
    assert "--record-field" in capsys.readouterr().err


def test_kaleidoscope_cli_simulation_is_deterministic(tmp_path) -> None:
    from rkdo.cli.viz import main

    outs = [tmp_path / "a.gif", tmp_path / "b.gif"]
    for out in outs:
        assert main(["kaleidoscope", "--frames", "3", "--nodes", "5", "--dpi", "30",
                     "--seed", "7", "--out", str(out)]) == 0
    assert outs[0].read_bytes() == outs[1].read_bytes()


def test_importing_the_cli_does_not_import_matplotlib() -> None:
    import subprocess

    code = ("import sys, rkdo.cli.viz, rkdo.viz, rkdo.geometry, rkdo.viz.simulate; "
            "sys.exit(int('matplotlib' in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_add_parser_registers_viz_with_three_commands() -> None:
    import argparse

    from rkdo.cli.viz import add_parser

    parser = argparse.ArgumentParser(prog="rkdo")
    sub = parser.add_subparsers(dest="command")
    add_parser(sub)
    for command in ("kaleidoscope", "curves", "embedding"):
        args = parser.parse_args(["viz", command] + (["DIR"] if command != "kaleidoscope"
                                                     else []))
        assert callable(args.func)
    args = parser.parse_args(["viz", "kaleidoscope", "--split", "--alpha", "0.3"])
    assert args.split and args.alpha == 0.3 and args.run is None
    with pytest.raises(SystemExit):
        parser.parse_args(["viz", "kaleidoscope", "--simulate", "--run", "DIR"])


def test_read_metrics_and_curves_png(tmp_path) -> None:
    from rkdo.cli.viz import main
    from rkdo.viz.plots import read_metrics

    runs = [_fake_run(tmp_path / "icon", seed=0), _fake_run(tmp_path / "rkdo", seed=1)]
    train, evaluation = read_metrics(runs[1])
    assert [r["step"] for r in train] == list(range(10, 101, 10))
    assert train[0]["loss"] == pytest.approx(2.0 - 0.1 - 0.1)
    assert [r["linear_probe"] for r in evaluation] == pytest.approx([0.6, 0.65])
    out = tmp_path / "curves.png"
    assert main(["curves", *map(str, runs), "--out", str(out), "--dpi", "100"]) == 0
    image = np.asarray(Image.open(out).convert("RGB"))
    # loss + 4 metrics in 3 columns, 2 rows of 4.6 x 3.4 inches
    assert image.shape == (round(2 * 3.4 * 100), round(3 * 4.6 * 100), 3)
    for color in ("#1f77b4", "#ff7f0e"):  # C0 and C1: one line per run
        assert np.all(np.abs(image.astype(int) - _rgb(color)) <= 40, axis=-1).sum() > 300
    assert main(["curves", str(runs[0]), "--metrics", "nope", "--out", str(out)]) == 2


def test_embedding_map_and_plot(tmp_path) -> None:
    from sklearn.decomposition import PCA
    from sklearn.neighbors import KNeighborsClassifier

    from rkdo.viz.plots import embed_2d, plot_embedding

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    centres = rng.normal(size=(3, 10)) * 6
    features = centres[labels] + rng.normal(size=(60, 10))
    np.testing.assert_allclose(embed_2d(features, "pca"),
                               PCA(n_components=2, random_state=0).fit_transform(features))
    mapped = embed_2d(features, "tsne", perplexity=10, steps=60)
    assert mapped.shape == (60, 2)
    accuracy = KNeighborsClassifier(3).fit(mapped, labels).score(mapped, labels)
    assert accuracy > 0.95
    np.testing.assert_array_equal(mapped, embed_2d(features, "tsne", perplexity=10, steps=60))
    with pytest.raises(ValueError, match="method"):
        embed_2d(features, "umap")

    # three clusters at known places: each class colour appears in the picture
    points = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])[labels] + rng.normal(size=(60, 2))
    out = plot_embedding(points, labels, tmp_path / "map.png", title="test", dpi=100)
    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape == (round(5.6 * 100), round(6.4 * 100), 3)
    for color in ("#1f77b4", "#ff7f0e", "#2ca02c"):
        drawn = 0.8 * _rgb(color) + 0.2 * 255  # alpha 0.8 over white
        assert np.all(np.abs(image.astype(int) - drawn) <= 20, axis=-1).sum() > 100
