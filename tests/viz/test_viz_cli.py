"""Tests of rkdo.cli.viz: each command on a fake run or a simulation, exit codes, the parser."""

from __future__ import annotations

import argparse
import subprocess
import sys

import numpy as np
import pytest

from rkdo.cli.main import main as rkdo_main
from rkdo.cli.viz import add_parser
from rkdo.fields import load_fields
from rkdo.viz.kaleidoscope import TEACHER_COLOR, Kaleidoscope
from rkdo.viz.simulate import simulate


def main(argv: list[str]) -> int:
    """``rkdo viz ARGV`` through the one ``rkdo`` entry point."""
    return rkdo_main(["viz", *argv])


def test_kaleidoscope_cli_on_a_recorded_run(tmp_path, capsys, fake_run, pixels) -> None:
    run = fake_run(tmp_path / "run")
    out = tmp_path / "run.gif"
    code = main(["kaleidoscope", "--run", str(run), "--split", "--nodes", "6", "--dpi", "40",
                 "--frames", "3", "--out", str(out)])
    assert code == 0
    assert "3 frames" in capsys.readouterr().out
    frames = pixels.read_gif(out)
    assert len(frames) == 3 and frames[0].shape == (280, 520, 3)
    fields = load_fields(run)
    assert fields.teacher.shape == (5, 10, 10)
    # the frames differ (the student field changes); the teacher dot that is farthest from its
    # student dot in the last frame is red where the same figure geometry puts it
    assert not np.array_equal(frames[0], frames[2])
    same = Kaleidoscope(fields, nodes=6, split=True, dpi=40, frames=3)
    np.testing.assert_array_equal(same.layout.steps, [0, 40, 80])
    p_xy, q_xy = same.layout.p_xy, same.layout.q_xy
    node = int(np.argmax(np.linalg.norm(p_xy[2] - q_xy[2], axis=-1)))
    for panel in (0, 1):
        assert pixels.close(frames[2][same.to_pixel(p_xy[2, node], panel)], TEACHER_COLOR)
    # a run without recorded fields: exit code 2 and a hint, no traceback
    (tmp_path / "bare").mkdir()
    assert main(["kaleidoscope", "--run", str(tmp_path / "bare"), "--out",
                 str(tmp_path / "x.gif")]) == 2
    assert "--record-field" in capsys.readouterr().err


def test_kaleidoscope_cli_simulation_is_deterministic(tmp_path) -> None:
    outs = [tmp_path / "a.gif", tmp_path / "b.gif"]
    for out in outs:
        assert main(["kaleidoscope", "--frames", "3", "--nodes", "5", "--dpi", "30",
                     "--seed", "7", "--out", str(out)]) == 0
    assert outs[0].read_bytes() == outs[1].read_bytes()


def test_kaleidoscope_cli_saves_the_simulated_fields(tmp_path) -> None:
    saved = tmp_path / "sim.npz"
    assert main(["kaleidoscope", "--frames", "4", "--nodes", "5", "--dpi", "30", "--seed", "3",
                 "--save-fields", str(saved), "--out", str(tmp_path / "s.gif")]) == 0
    fields, expected = load_fields(saved), simulate(n_points=5, frames=4, seed=3)
    np.testing.assert_allclose(fields.teacher, expected.teacher, rtol=1e-6)
    np.testing.assert_array_equal(fields.labels, expected.labels)


def test_curves_cli_writes_a_png_and_names_unknown_metrics(tmp_path, capsys, fake_run) -> None:
    runs = [fake_run(tmp_path / "icon", seed=0), fake_run(tmp_path / "rkdo", seed=1)]
    out = tmp_path / "curves.png"
    assert main(["curves", *map(str, runs), "--out", str(out), "--dpi", "100"]) == 0
    assert out.exists() and f"wrote {out}" in capsys.readouterr().out
    assert main(["curves", str(runs[0]), "--metrics", "nope", "--out", str(out)]) == 2
    assert "available" in capsys.readouterr().err


def test_embedding_cli_on_a_directory_that_is_not_a_run(tmp_path, capsys) -> None:
    assert main(["embedding", str(tmp_path), "--out", str(tmp_path / "e.png")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_importing_the_cli_does_not_import_matplotlib() -> None:
    code = ("import sys, rkdo.cli.viz, rkdo.viz, rkdo.geometry, rkdo.viz.simulate; "
            "sys.exit(int('matplotlib' in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_the_viz_face_loads_on_use_and_keeps_its_names() -> None:
    """``rkdo.viz.figures`` (a light module of the viz layer) loads no torch; the
    face's ``simulate`` is the function, also after its module is imported by name."""
    code = ("import sys, inspect, rkdo.viz.figures\n"
            "assert 'torch' not in sys.modules\n"
            "import rkdo.viz.simulate\n"
            "from rkdo.viz import Kaleidoscope, maps, simulate\n"
            "assert inspect.isfunction(simulate) and inspect.isfunction(rkdo.viz.simulate)\n"
            "assert inspect.isclass(Kaleidoscope) and inspect.ismodule(maps)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_add_parser_registers_viz_with_three_commands() -> None:
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
    with pytest.raises(SystemExit):
        parser.parse_args(["viz", "kaleidoscope", "--fps", "0"])


def _rkdo(*argv: str) -> int:
    from rkdo.cli.main import main as rkdo_main

    return rkdo_main(list(argv))


def test_kaleidoscope_default_nodes_adapt_to_a_small_recording(tmp_path, capsys) -> None:
    from rkdo.fields import save_fields

    fields = simulate(n_points=8, frames=2, seed=0).fields
    path = save_fields(tmp_path / "eight.npz", fields)
    assert _rkdo("viz", "kaleidoscope", "--run", str(path), "--dpi", "30",
                 "--out", str(tmp_path / "k.gif")) == 0
    assert "8 nodes" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["cmap", "npy", "truncated"])
def test_kaleidoscope_typos_and_bad_files_give_one_line_with_the_fix(tmp_path, capsys,
                                                                      case) -> None:
    from rkdo.fields import save_fields

    good = save_fields(tmp_path / "good.npz", simulate(n_points=6, frames=2, seed=0).fields)
    source = {"cmap": good, "npy": tmp_path / "x.npy", "truncated": tmp_path / "t.npz"}[case]
    if case == "npy":
        np.save(source, np.ones((2, 6, 6)))
    elif case == "truncated":
        source.write_bytes(good.read_bytes()[:300])
    extra = ["--cmap", "nosuchmap"] if case == "cmap" else []
    assert _rkdo("viz", "kaleidoscope", "--run", str(source), "--dpi", "30", *extra,
                 "--out", str(tmp_path / "k.gif")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert {"cmap": "such as coolwarm", "npy": "single .npy array",
            "truncated": "not an .npz"}[case] in err
