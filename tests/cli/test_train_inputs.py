"""``rkdo train`` on awkward input: a torn metrics line, a missing TensorBoard, a seed too large,
a small image folder with the default batch size."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from rkdo.cli.main import main

TINY = ["--dataset", "digits", "--epochs", "2", "--steps-per-epoch", "3", "--batch-size", "32",
        "--embedding-dim", "16", "--hidden-dim", "32", "--eval-protocol", "none",
        "--no-progress", "--log-every", "1"]


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_a_torn_last_metrics_line_is_dropped_with_a_warning_on_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from rkdo.training import train
    from rkdo.training.rundir import read_config

    run = tmp_path / "run"
    assert main(["train", "--out", str(run), *TINY, "--epochs", "1"]) == 0
    config = read_config(run)
    whole = tmp_path / "whole"
    train(config, whole, progress=False)
    stopped = tmp_path / "stopped"
    train(config, stopped, progress=False, stop_after=2)
    with open(stopped / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 3, "loss": 2.7')  # a crash while the line was written
    with pytest.warns(UserWarning, match=r"metrics.jsonl:3: ignoring a torn last line"):
        train(None, stopped, resume=True, progress=False)
    lines = [json.loads(line) for line in (stopped / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if "loss" in line] == [1, 2, 3]


def test_tensorboard_without_the_extra_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # not installed
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), *TINY, "--tensorboard"]) == 2
    assert "--tensorboard needs `pip install rkdo[tensorboard]`" in _one_line(capsys)
    assert not run.exists()


@pytest.mark.parametrize("seed", ["99999999999999999", "-1"])
def test_a_seed_out_of_range_names_the_flag(
    tmp_path: Path, seed: str, capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["train", "--out", str(tmp_path / "run"), *TINY, "--seed", seed]) == 2
    assert f"--seed must be an integer in [0, 4294967295], got {seed}" in _one_line(capsys)


def _folder(root: Path, per_class: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        folder = root / name
        folder.mkdir(parents=True)
        for k in range(per_class):
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels, mode="RGB").save(folder / f"{k:02d}.png")
    return root


def test_a_small_folder_adapts_the_default_batch_and_refuses_a_typed_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    images = _folder(tmp_path / "images", 30)  # 60 images: 48 train after the 0.2 hold-out
    flags = ["--dataset", f"imagefolder:{images}", "--image-size", "32", "--encoder",
             "small-cnn", "--epochs", "1", "--steps-per-epoch", "1", "--embedding-dim", "16",
             "--hidden-dim", "32", "--eval-protocol", "none", "--no-progress"]
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), *flags]) == 0
    captured = capsys.readouterr()
    assert "batch size 48" in captured.out + captured.err
    assert json.loads((run / "config.json").read_text())["batch_size"] == 48
    assert main(["train", "--out", str(tmp_path / "typed"), *flags, "--batch-size", "64"]) == 2
    assert "batch size 64 is larger than" in _one_line(capsys)
