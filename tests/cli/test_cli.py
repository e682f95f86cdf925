"""The ``rkdo`` command: help texts, clear errors without tracebacks, train and eval."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rkdo.cli.main import build_parser, main
from rkdo.cli.train import config_from_args
from rkdo.training import GROUPS, TrainConfig


def test_help_explains_every_training_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--dataset", "--encoder", "--method", "--alpha", "--depth", "--beta",
                 "--temperature", "--steps-per-epoch", "--resume", "--checkpoint-every",
                 "--precision", "--channels-last", "--eval-protocol", "--record-field"):
        assert flag in text, flag
    assert "tsne" in text and "supcon" in text  # the methods epilog


def test_every_config_field_is_a_flag_in_its_group(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    sections = dict(re.findall(r"^(\w+) options:\n(.*?)(?=^\S|\Z)", text, re.M | re.S))
    assert set(sections) == set(GROUPS)
    for spec in dataclasses.fields(TrainConfig):
        assert spec.metadata["help"] and spec.metadata["group"] in GROUPS, spec.name
        flag = "--" + spec.name.replace("_", "-")
        assert re.search(rf"^  {flag}\b", sections[spec.metadata["group"]], re.M), flag


def test_default_flags_give_the_default_config() -> None:
    args = build_parser().parse_args(["train", "--out", "x"])
    assert config_from_args(args) == TrainConfig()
    args = build_parser().parse_args(["train", "--out", "x", "--eval-epochs", "1", "2",
                                      "--n-clusters", "7", "--detach-teacher"])
    config = config_from_args(args)
    assert (config.eval_epochs, config.n_clusters, config.detach_teacher) == ([1, 2], 7, True)


def test_top_level_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for command in ("demo", "train", "eval"):
        assert command in text


def test_parsed_defaults_are_the_papers() -> None:
    args = build_parser().parse_args(["train", "--out", "x"])
    assert (args.alpha, args.depth, args.temperature, args.beta) == (0.5, 3, 0.5, 0.1)
    assert (args.lr, args.weight_decay, args.batch_size) == (1e-3, 1e-5, 64)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--out", "X", "--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        (["train", "--out", "X", "--method", "byol"], "unknown method 'byol'"),
        (["train", "--out", "X", "--alpha", "2"], "alpha must lie in [0, 1]"),
        (["train", "--out", "X", "--dataset", "fashion-mnist", "--data-root", "NOPE"],
         "NOPE"),
        (["train"], "give --out DIR"),
        (["eval", "NOPE"], "is not a run directory"),
    ],
)
def test_bad_input_is_one_clear_line(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_train_then_eval_from_the_command_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    command = [sys.executable, "-m", "rkdo", "train", "--out", str(run), "--epochs", "1",
               "--steps-per-epoch", "3", "--batch-size", "32", "--embedding-dim", "16",
               "--hidden-dim", "32", "--eval-protocol", "none", "--no-progress"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([sys.executable, "-m", "rkdo", "eval", str(run), "--json",
                           "--probe-train-size", "300"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert 0.0 <= result["linear_probe"] <= 1.0
    assert result["knn_acc_20"] > 0.1  # ten classes: better than chance on digits
