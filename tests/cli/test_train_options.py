"""``rkdo train`` options beyond the config fields: ``--config run.toml`` and the help text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rkdo.cli.main import build_parser, main
from rkdo.cli.train import config_from_args


def _config(*argv: str):
    return config_from_args(build_parser(["train"]).parse_args(["train", "--out", "x", *argv]))


def test_config_file_sets_options_and_typed_flags_override_it(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('lr = 0.01\nmethod = "supcon"\n[optimisation]\nbatch-size = 32\nepochs = 2\n')
    config = _config("--config", str(path), "--epochs", "3")
    assert (config.lr, config.method, config.batch_size, config.epochs) == (0.01, "supcon", 32, 3)
    # the file overrides a recipe; a flag typed overrides both
    config = _config("--recipe", "digits", "--config", str(path), "--lr", "0.5")
    assert (config.lr, config.batch_size) == (0.5, 32)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lrr = 0.01\n", "unknown setting 'lrr'; did you mean 'lr'?"),
        ('lr = "fast"\n', "lr must be a number, got 'fast'"),
        ("lr = \n", "is not valid TOML"),
    ],
)
def test_bad_config_files_are_one_line_before_any_work(
    text: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "run.toml"
    path.write_text(text)
    assert main(["train", "--out", str(tmp_path / "run"), "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists()
    assert main(["train", "--out", str(tmp_path / "run"), "--config", str(tmp_path / "no")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_help_lines_print_one_default_each(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    entries = re.split(r"\s(?=--[a-z])", text)
    doubled = [entry[:60] for entry in entries if entry.count("default") > 1]
    assert not doubled, doubled
    assert "--debias DEBIAS uniform leak of the target in [0, 1) (default: the method's" in text
