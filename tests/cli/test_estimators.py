"""``rkdo embed`` / ``rkdo cluster`` through a parser built with ``add_parser`` and through
``rkdo``'s ``main`` (reading ``DATA`` itself: ``test_features.py``)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from rkdo.cli.estimators import add_parser
from rkdo.cli.features import load_features


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="rkdo")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def points(tmp_path):
    x, _ = make_blobs(n_samples=120, n_features=6, centers=3, random_state=0)
    np.save(tmp_path / "x.npy", x)
    np.savetxt(tmp_path / "x.csv", x, delimiter=",", header="a,b,c,d,e,f", comments="")
    return tmp_path, x


def test_embed_npy_with_plot(points) -> None:
    folder, x = points
    out, plot = folder / "emb.npy", folder / "emb.png"
    assert _run(["embed", str(folder / "x.npy"), "--out", str(out), "--plot", str(plot),
                 "--perplexity", "10", "--max-iter", "100"]) == 0
    assert np.load(out).shape == (120, 2) and plot.stat().st_size > 0


def test_cluster_csv_with_header(points, capsys) -> None:
    folder, _ = points
    out = folder / "labels.npy"
    assert _run(["cluster", str(folder / "x.csv"), "--out", str(out), "--n-clusters", "3"]) == 0
    assert len(np.unique(np.load(out))) == 3


def test_cluster_digits_reports_nmi(tmp_path, capsys) -> None:
    out = tmp_path / "labels.npy"
    assert _run(["cluster", "digits", "--out", str(out), "--max-points", "400"]) == 0
    assert "NMI" in capsys.readouterr().out


def test_embed_run_directory(tmp_path) -> None:
    from rkdo.training import TrainConfig, train

    run = tmp_path / "run"
    train(TrainConfig(dataset="digits", epochs=1, steps_per_epoch=1, batch_size=32), out=run,
          progress=False)
    features, labels = load_features(str(run))
    assert features.shape[0] == labels.shape[0] > 100
    assert _run(["embed", str(run), "--out", str(tmp_path / "e.npy"), "--max-iter", "60",
                 "--max-points", "150"]) == 0


# -- issue 19: bad input is one clear line, through the real command -------------------------

import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from rkdo.cli.main import main  # noqa: E402


def _main(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_defaults_come_from_the_estimators() -> None:
    from rkdo.estimators import KernelClustering, NeighbourEmbedding

    parser = argparse.ArgumentParser(prog="rkdo")
    add_parser(parser.add_subparsers(dest="command"))
    embed = parser.parse_args(["embed", "x.npy", "--out", "e.npy"])
    cluster = parser.parse_args(["cluster", "x.npy", "--out", "l.npy"])
    for name in ("perplexity", "max_iter", "objective", "method", "alpha", "alpha_schedule"):
        assert getattr(embed, name) == NeighbourEmbedding().get_params()[name]
    for name in ("n_clusters", "affinity", "n_neighbors", "debias_p", "debias_q"):
        assert getattr(cluster, name) == KernelClustering().get_params()[name]


def test_help_has_a_default_on_every_option_and_no_rest_markup(capsys) -> None:
    for command in ("embed", "cluster"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert "``" not in text
        options = [line for line in text.splitlines() if line.startswith("  --")]
        body = text.split("options:")[1]
        assert options and body.count("default") + body.count("(required)") >= len(options) - 1
    assert "Cluster the rows" not in _help("embed", capsys)


def _help(command: str, capsys) -> str:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    return capsys.readouterr().out


def test_csv_header_decided_from_the_first_row(tmp_path, capsys) -> None:
    """A header-less CSV whose first row has a typo lost that row ("299 points" for 300)."""
    rows = np.random.default_rng(0).standard_normal((30, 3))
    lines = [",".join(f"{v:.6f}" for v in row) for row in rows]
    typo = tmp_path / "typo.csv"
    typo.write_text("\n".join(["0.1,0.2x,0.3"] + lines[1:]) + "\n")
    code, text = _main(["embed", str(typo), "--out", str(tmp_path / "e.npy")], capsys)
    assert code == 2 and "typo.csv:1: field 2 ('0.2x') is not a number" in text
    trailing = tmp_path / "trailing.csv"
    trailing.write_text("a,b,c\n" + "\n".join(lines[:5] + [lines[5] + ","] + lines[6:]) + "\n")
    code, text = _main(["embed", str(trailing), "--out", str(tmp_path / "e.npy")], capsys)
    assert code == 2 and "trailing.csv:7: 4 fields" in text
    header = tmp_path / "header.csv"
    header.write_text("a,b,c\n" + "\n".join(lines) + "\n")
    assert load_features(str(header))[0].shape == (30, 3)
    plain = tmp_path / "plain.csv"
    plain.write_text("\n".join(lines) + "\n")
    np.testing.assert_allclose(load_features(str(plain))[0], np.round(rows, 6))


def test_nan_in_csv_and_npy_named_with_file_and_row(tmp_path, capsys) -> None:
    table = tmp_path / "nan.csv"
    table.write_text("a,b\n1,2\n3,nan\n5,6\n7,8\n")
    code, text = _main(["cluster", str(table), "--out", str(tmp_path / "l.npy")], capsys)
    assert code == 2 and "nan.csv: line 3 holds NaN" in text
    array = np.ones((6, 2))
    array[4, 1] = np.inf
    np.save(tmp_path / "inf.npy", array)
    code, text = _main(["embed", str(tmp_path / "inf.npy"), "--out", str(tmp_path / "e.npy")],
                       capsys)
    assert code == 2 and "inf.npy: row 4 (0-based) holds NaN" in text


@pytest.mark.parametrize("device, message", [
    ("banana", "unknown device 'banana'"), ("cuda:7", "cuda:7"),
])
def test_bad_devices_are_one_line(points, capsys, device: str, message: str) -> None:
    folder, _ = points
    import torch

    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    for command in ("embed", "cluster"):
        code, text = _main([command, str(folder / "x.npy"), "--out", str(folder / "o.npy"),
                            "--device", device], capsys)
        assert code == 2 and message in text and "Traceback" not in text


@pytest.mark.parametrize("argv, message", [
    (["--max-points", "-5"], "--max-points: must be an integer >= 4"),
    (["--alpha", "1"], "--alpha: must lie in [0, 1)"),
    (["--perplexity", "0"], "--perplexity: must lie in (0, inf]"),
])
def test_values_outside_the_help_are_refused(points, capsys, argv, message: str) -> None:
    folder, _ = points
    with pytest.raises(SystemExit) as stop:
        main(["embed", str(folder / "x.npy"), "--out", str(folder / "o.npy"), *argv])
    assert stop.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("value, message", [
    ("many", "--n-neighbors: 'many' is not an integer or 'auto'"),
    ("0", "--n-neighbors: must be an integer >= 1, got 0"),
])
def test_cluster_neighbours_are_a_count_or_auto(points, capsys, value, message: str) -> None:
    folder, _ = points
    with pytest.raises(SystemExit) as stop:
        main(["cluster", str(folder / "x.npy"), "--out", str(folder / "o.npy"),
              "--n-neighbors", value])
    assert stop.value.code == 2 and message in capsys.readouterr().err
    code, _ = _main(["cluster", str(folder / "x.npy"), "--out", str(folder / "o.npy"),
                     "--n-neighbors", "auto", "--n-clusters", "2"], capsys)
    assert code == 0


@pytest.mark.parametrize("factor", [1e200, 1e-200])
def test_extreme_scales_embed_and_cluster(points, tmp_path, capsys, factor: float) -> None:
    """x 1e200 gave a raw FloatingPointError blaming learning_rate; x 1e-200 collapsed."""
    _, x = points
    np.save(tmp_path / "scaled.npy", x * factor)
    code, text = _main(["embed", str(tmp_path / "scaled.npy"), "--out", str(tmp_path / "e.npy"),
                        "--perplexity", "10", "--max-iter", "100"], capsys)
    assert code == 0, text
    embedded = np.load(tmp_path / "e.npy")
    assert np.isfinite(embedded).all() and np.ptp(embedded, axis=0).min() > 1.0
    code, text = _main(["cluster", str(tmp_path / "scaled.npy"), "--out",
                        str(tmp_path / "l.npy"), "--n-clusters", "3"], capsys)
    assert code == 0, text and len(np.unique(np.load(tmp_path / "l.npy"))) == 3


def test_unwritable_outputs_refused_before_computing(points, tmp_path, capsys) -> None:
    folder, _ = points
    code, text = _main(["embed", str(folder / "x.npy"), "--out",
                        str(tmp_path / "missing" / "e.npy")], capsys)
    assert code == 2 and "does not exist" in text and "wrote" not in text
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        code, text = _main(["embed", str(folder / "x.npy"), "--out", str(folder / "e.npy"),
                            "--plot", str(locked / "e.png")], capsys)
        assert code == 2 and "--plot" in text and "not writable" in text
        assert not (folder / "e.npy").exists()
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("rows, message", [(3, "too few points"), (20, "using perplexity")])
def test_few_points(tmp_path, capsys, rows: int, message: str) -> None:
    np.save(tmp_path / "few.npy", np.random.default_rng(0).standard_normal((rows, 3)))
    code, text = _main(["embed", str(tmp_path / "few.npy"), "--out", str(tmp_path / "e.npy"),
                        "--max-iter", "60"], capsys)
    assert message in text and code == (2 if rows < 4 else 0)


def test_complex_input_refused(tmp_path, capsys) -> None:
    np.save(tmp_path / "z.npy", np.ones((10, 2)) * (1 + 2j))
    code, text = _main(["embed", str(tmp_path / "z.npy"), "--out", str(tmp_path / "e.npy")],
                       capsys)
    assert code == 2 and "complex" in text


def test_n_neighbors_clipping_is_the_estimators_one_line_warning(points, capsys) -> None:
    """The estimator clips ``n_neighbors`` and warns (issue 18); the command passes the value
    through and prints that warning as one line, once, without a traceback."""
    folder, _ = points
    code, text = _main(["cluster", str(folder / "x.npy"), "--out", str(folder / "l.npy"),
                        "--n-clusters", "3", "--n-neighbors", "500", "--max-points", "50"],
                       capsys)
    warned = [line for line in text.splitlines() if "warning: n_neighbors" in line]
    assert code == 0 and "Traceback" not in text, text
    assert warned == ["rkdo cluster: warning: n_neighbors = 500 exceeds n_samples - 1 = 49; "
                      "clipped to 49, so every point neighbours every other and the graph "
                      "carries no cluster information: lower it"], text
    assert np.load(folder / "l.npy").shape == (50,)
    code, text = _main(["cluster", str(folder / "x.npy"), "--out", str(folder / "l.npy"),
                        "--n-clusters", "3", "--n-neighbors", "10", "--max-points", "50"],
                       capsys)
    assert code == 0 and "warning" not in text, text


def test_sixty_thousand_exact_refused_in_one_line(tmp_path) -> None:
    """Issue 19 item 1: 60,000 rows with --objective sne tried to allocate 28.8 GB."""
    np.save(tmp_path / "big.npy", np.random.default_rng(0).standard_normal((60_000, 2)))
    done = subprocess.run([sys.executable, "-m", "rkdo", "embed", str(tmp_path / "big.npy"),
                           "--out", str(tmp_path / "e.npy"), "--objective", "sne"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "n = 60000 needs ~" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "e.npy").exists()


def test_ctrl_c_message_is_embeds_own(tmp_path) -> None:
    """A real process, a real SIGINT: rc 130, no output, no talk of `rkdo train --resume`.

    The child gets SIGINT's default disposition back: a suite launched in the background of a
    non-interactive shell inherits SIGINT ignored, and Python keeps an ignored SIGINT ignored
    (Ctrl-C at a terminal never is)."""
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((600, 5)))
    process = subprocess.Popen(
        [sys.executable, "-m", "rkdo", "embed", str(tmp_path / "x.npy"), "--out",
         str(tmp_path / "e.npy"), "--max-iter", "100000", "--progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    seen = ""
    while "embedding" not in seen and time.monotonic() < deadline:
        seen += process.stderr.read1(4096) if hasattr(process.stderr, "read1") else \
            os.read(process.stderr.fileno(), 4096).decode()
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=120)
    message = seen + rest
    assert process.returncode == 130, message
    assert "nothing was written" in message and "train --resume" not in message
    assert "Traceback" not in message and not (tmp_path / "e.npy").exists()


def test_embed_plot_names_the_classes(tmp_path, monkeypatch) -> None:
    """``--plot`` labels a named dataset's classes by name (issue 20: Fashion drawn as 0-9)."""
    import rkdo.viz.maps as maps
    from rkdo.vision.data import load

    seen = {}

    def spy(embedding, labels, path, **options):
        seen.update(options)
        return path

    monkeypatch.setattr(maps, "plot_embedding", spy)
    assert _run(["embed", "digits", "--out", str(tmp_path / "e.npy"), "--plot",
                 str(tmp_path / "e.png"), "--max-points", "150", "--perplexity", "10",
                 "--max-iter", "60"]) == 0
    assert seen["class_names"] == list(load("digits").classes)
    assert seen["title"] == "Digits (150 images), rkdo t-SNE"


def test_embed_title_uses_display_names(tmp_path) -> None:
    """The map's title names the data and the objective as a reader knows them (the README
    picture's was "fashion-mnist: tsne, 70000 points")."""
    import json

    from rkdo.cli.estimators import embed_title

    assert embed_title("fashion-mnist", 70000, "tsne") == ("Fashion-MNIST (70,000 images), "
                                                           "rkdo t-SNE")
    assert embed_title(str(tmp_path / "x.csv"), 1234, "infonce", 0.3) == (
        "x.csv (1,234 points), rkdo InfoNCE, recursive (alpha 0.3)")
    run = tmp_path / "r1"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"dataset": "cifar10"}))
    assert embed_title(str(run), 10000, "neg") == (
        "CIFAR-10 test features of run r1 (10,000 points), rkdo negative sampling")
