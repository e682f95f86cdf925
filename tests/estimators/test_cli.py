"""``rkdo embed`` / ``rkdo cluster`` through a parser built with ``add_parser``."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from rkdo.cli.estimators import add_parser, load_features


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
