"""The ``rkdo`` command: help texts, clear errors without tracebacks, train and eval."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
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


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


TINY = ["--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "32", "--embedding-dim",
        "16", "--hidden-dim", "32", "--eval-protocol", "none", "--no-progress"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--out", "X", "--dataset", "fashion-mnist", "--image-size", "4000"],
         "--image-size 4000 with --batch-size 64"),
        (["train", "--out", "X", "--image-size", "0"], "image-size must be an integer >= 1"),
        (["train", "--out", "X", "--method", "cluster", "--n-clusters", "0"], "n-clusters must"),
        (["train", "--out", "X", "--alpha-schedule", "bogus"], "unknown alpha schedule"),
        (["train", "--out", "X", "--lr", "inf"], "lr must be a finite number, got inf"),
        (["train", "--out", "X", "--batch-size", "1"], "batch-size must be >= 2"),
        (["train", "--out", "X", "--optimizer", "sgd", "--momentum", "nan"], "momentum must be"),
        (["train", "--out", "X", "--device", "tpu"], "unknown device 'tpu'"),
        (["train", "--out", "X", "--checkpoint-minutes", "-1"], "checkpoint-minutes must be"),
        (["train", "--resume", "X", "--out", "Y"], "--resume continues the run in X: drop --out"),
        (["train", "--out", "NOTES"], "--out NOTES is a file, not a directory"),
        (["train", "--out", "NOTES/run"], "lies under"),
        (["train", "--resume", "NOTES"], "NOTES is a file, not a run directory"),
    ],
)
def test_bad_training_input_is_one_line_before_any_work(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "NOTES").write_text("mine")
    assert main(argv) == 2
    assert message in _one_line(capsys)
    assert not (tmp_path / "X").exists()


def test_a_read_only_out_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    import os

    locked = tmp_path / "locked"
    locked.mkdir()
    as_root = os.geteuid() == 0
    # root ignores permission bits; an immutable directory is read-only for root too
    made = (subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode == 0
            if as_root else (locked.chmod(0o555) or True))
    if not made:
        pytest.skip("cannot make a read-only directory here")
    try:
        assert main(["train", "--out", str(locked / "run"), *TINY]) == 2
        assert "is not writable (permission denied); choose another --out" in _one_line(capsys)
    finally:
        if as_root:
            subprocess.run(["chattr", "-i", str(locked)], check=True)
        else:
            locked.chmod(0o755)


def test_resume_applies_more_epochs_and_refuses_other_flags_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    run = str(tmp_path / "run")
    assert main(["train", "--out", run, *TINY]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", run, "--lr", "0.1", "--detach-teacher"]) == 2
    assert "--detach-teacher, --lr cannot change when resuming" in _one_line(capsys)
    assert main(["train", "--resume", run, "--epochs", "2", "--no-progress", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["epoch"] == 2
    assert main(["eval", run, "--probe-train-size", "0"]) == 2
    assert "--probe-train-size must be an integer >= 1, got 0" in _one_line(capsys)
    import torch

    if not torch.cuda.is_available():
        assert main(["eval", run, "--device", "cuda"]) == 2
        assert "no CUDA device is available; use --device cpu" in _one_line(capsys)


def test_choices_come_from_the_registries(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    from rkdo import methods
    from rkdo.bench.executors import EXECUTORS, SUMMARIES

    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in EXECUTORS:
        assert f"{name}: {SUMMARIES[name]}" in text, name
    with pytest.raises(SystemExit):
        main(["bench", "g", "--out", "o", "--executor", "nope"])
    assert f"choose from {', '.join(map(repr, EXECUTORS))}" in capsys.readouterr().err
    assert main(["train", "--method", "nope", "--out", str(tmp_path / "run")]) == 2
    assert f"choose one of: {', '.join(methods.METHODS)}" in capsys.readouterr().err


def test_rkdo_has_one_entry_point() -> None:
    """The command families only declare their parsers; ``rkdo.cli.main`` runs them."""
    from rkdo.cli import bench, estimators, train, viz

    assert not [family.__name__ for family in (bench, estimators, train, viz)
                if hasattr(family, "main")]


def test_a_bench_typo_is_reported_without_loading_torch() -> None:
    """``--executor``'s choices come from the registry only when the option is used."""
    code = ("import sys\nfrom rkdo.cli.main import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    done = subprocess.run([sys.executable, "-c", code, "bench", "digits-smoke", "--nosuch"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert "unrecognized arguments: --nosuch" in done.stderr
    assert done.stdout.split()[-1] == "NO-TORCH"


def _subcommand(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return commands.choices[name]


def test_main_lists_commands_as_the_full_parser_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """``main`` builds only the named command's options: the listing, and each command's own
    help, are those of the parser with every command built."""
    from rkdo.cli.main import COMMANDS, _command_parser

    monkeypatch.setenv("COLUMNS", "100")
    full = build_parser()
    assert _command_parser(None).format_help() == full.format_help()
    for name in COMMANDS:
        light = _command_parser(name)
        assert light.format_help() == full.format_help()
        assert (_subcommand(light, name).format_help()
                == _subcommand(full, name).format_help()), name


@pytest.mark.parametrize("argv", [["demo", "--bogus"], ["demo", "--help"], ["viz", "--help"],
                                  ["viz", "curves", "--bogus"]])
def test_a_light_command_loads_no_torch(argv: list[str]) -> None:
    """A command whose options need no torch is parsed without it, whatever the others need."""
    code = ("import sys\nfrom rkdo.cli.main import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.stdout.split()[-1] == "NO-TORCH", done.stderr
