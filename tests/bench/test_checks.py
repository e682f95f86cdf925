"""Refusals before work (setting types, missing data) and damaged results.jsonl files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rkdo import bench
from rkdo.cli.main import main as bench_main

TINY = """
name = "tiny"
seeds = [0]
durations = [1]
profile = false
[settings]
encoder = "small-cnn"
batch_size = 32
steps_per_epoch = 2
eval_protocol = "none"
[[datasets]]
dataset = "digits"
[[methods]]
name = "icon"
"""


@pytest.mark.parametrize(("setting", "message"), [
    ('batch_size = "64"', r"\[settings\]: batch_size must be an integer, got '64'"),
    ("steps_per_epoch = 3.5", r"\[settings\]: steps_per_epoch must be an integer, got 3.5"),
    ("lr = true", r"\[settings\]: lr must be a number, got True"),
])
def test_setting_types_are_checked_naming_the_key(tmp_path: Path, setting: str,
                                                  message: str) -> None:
    key = setting.split()[0]
    kept = [line for line in TINY.splitlines() if not line.startswith(f"{key} =")]
    text = "\n".join(kept).replace("[settings]", f"[settings]\n{setting}")
    with pytest.raises(ValueError, match=message):
        bench.parse_grid(text)
    grid_file = tmp_path / "g.toml"
    grid_file.write_text(text)
    assert bench_main(["bench", str(grid_file), "--out", str(tmp_path / "s")]) == 2
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("dataset", ["imagefolder:/nonexistent", "fashion-mnist"])
def test_missing_data_is_refused_before_the_first_job(tmp_path: Path, dataset: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    text = TINY.replace('dataset = "digits"', f'dataset = "{dataset}"\n'
                        f'data_root = "{tmp_path / "no-data"}"')
    with pytest.raises(ValueError, match=rf"\[\[datasets\]\] {dataset}: "):
        bench.run_grid(bench.parse_grid(text), tmp_path / "store", progress=False)
    assert not (tmp_path / "store").exists()
    grid_file = tmp_path / "g.toml"
    grid_file.write_text(text)
    assert bench_main(["bench", str(grid_file), "--out", str(tmp_path / "store")]) == 2
    assert "Traceback" not in capsys.readouterr().err


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    bench.run_grid(bench.parse_grid(TINY), out, progress=False)
    return out


def test_a_torn_last_line_is_dropped_with_a_warning_and_its_cell_reruns(store: Path,
                                                                        tmp_path: Path) -> None:
    results = store / bench.RESULTS_FILE
    line = results.read_text()
    out = tmp_path / "torn"
    out.mkdir()
    for name in (bench.GRID_FILE, bench.STORE_FILE):
        (out / name).write_text((store / name).read_text())
    (out / bench.RESULTS_FILE).write_text(line[: len(line) // 2])  # what a crash leaves
    with pytest.warns(UserWarning, match=r"results.jsonl:1: ignoring a torn last line"):
        assert bench.read_results(out) == {}
    with pytest.warns(UserWarning, match="torn last line"):
        summary = bench.run_grid(bench.parse_grid(TINY), out, progress=False)
    assert (summary.done_before, summary.ran, summary.failed) == (0, 1, [])
    assert list(bench.read_results(out)) == ["digits/icon/seed0"]


def _damaged(store: Path, tmp_path: Path, lines: list[str]) -> Path:
    out = tmp_path / "damaged"
    out.mkdir(parents=True)
    for name in (bench.GRID_FILE, bench.STORE_FILE):
        (out / name).write_text((store / name).read_text())
    (out / bench.RESULTS_FILE).write_text("".join(line + "\n" for line in lines))
    return out


def test_a_corrupt_line_before_the_last_names_file_and_line(store: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    good = (store / bench.RESULTS_FILE).read_text().strip()
    out = _damaged(store, tmp_path, ['{"key": "x", "status": ', good])
    with pytest.raises(ValueError, match=r"results.jsonl:1 is not a JSON record"):
        bench.read_results(out)
    assert bench_main(["report", str(out)]) == 2
    assert "results.jsonl:1" in capsys.readouterr().err


@pytest.mark.parametrize(("change", "message"), [
    ({"durations": None}, r"'durations' of 'digits/icon/seed0' is missing"),
    ({"config": "lr=1"}, r"'config' of 'digits/icon/seed0' is missing or of the wrong type"),
    ({"status": "done"}, r"'status' of 'digits/icon/seed0' must be ok, error or skipped"),
    ({"durations": {"1": [0.5]}}, r"the metrics of 'digits/icon/seed0' must be objects"),
])
def test_a_malformed_record_names_file_line_and_field(store: Path, tmp_path: Path,
                                                      change: dict, message: str) -> None:
    record = json.loads((store / bench.RESULTS_FILE).read_text())
    out = _damaged(store, tmp_path, [json.dumps(dict(record, **change))])
    with pytest.raises(ValueError, match=rf"results.jsonl:1: malformed record: {message}"):
        bench.load_results(out)
    assert bench_main(["report", str(out)]) == 2
    not_an_object = _damaged(store, tmp_path / "list", ["[1, 2]", json.dumps(record)])
    with pytest.raises(ValueError, match="results.jsonl:1: malformed record: expected an obj"):
        bench.read_results(not_an_object)
