"""``rkdo eval RUN`` reproduces the run's own ``eval.json`` (it reads the run's config.json) and
says which settings it used; ``rkdo train`` ends with a short table (JSON with ``--json``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ENV = {**os.environ, "OMP_NUM_THREADS": "1",
       "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
# settings that differ from `rkdo eval`'s own defaults: eval must take them from config.json
RUN = ["--dataset", "digits", "--encoder", "small-cnn", "--epochs", "1", "--steps-per-epoch",
       "3", "--batch-size", "32", "--embedding-dim", "16", "--hidden-dim", "32", "--seed", "4",
       "--probe-train-size", "400", "--crop-scale", "0.5", "--eval-protocol", "both",
       "--no-progress"]


def _rkdo(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rkdo", *argv], capture_output=True, text=True,
                          env=ENV, timeout=600)


def test_eval_of_a_run_reproduces_its_eval_json_and_names_its_settings(tmp_path: Path) -> None:
    run = tmp_path / "run"
    done = _rkdo("train", "--out", str(run), *RUN)
    assert done.returncode == 0, done.stderr[-3000:]
    # the end of training: a readable table, not raw JSON
    assert "linear probe" in done.stdout and not done.stdout.lstrip().startswith("{")
    saved = json.loads((run / "eval.json").read_text())

    done = _rkdo("eval", str(run), "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    again = json.loads(done.stdout)
    numbers = {k: v for k, v in saved.items() if k not in ("eval_seconds", "epoch", "step")}
    assert numbers and {k: again[k] for k in numbers} == numbers  # exactly, every metric
    # the settings it used are said (on stderr with --json, so stdout stays JSON)
    for setting in ("protocol both", "probe_train_size 400", "crop_scale 0.5", "seed 4"):
        assert setting in done.stderr, (setting, done.stderr)

    # a flag says otherwise: the settings line and the numbers follow it
    done = _rkdo("eval", str(run), "--protocol", "full", "--probe-train-size", "300")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "probe_train_size 300" in done.stdout and "protocol full" in done.stdout
    assert "paper_linear_probe" not in done.stdout

    # resuming a finished run says it is complete (and shows the table again)
    done = _rkdo("train", "--resume", str(run), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "complete" in done.stdout and "linear probe" in done.stdout
    done = _rkdo("train", "--resume", str(run), "--no-progress", "--json")
    assert json.loads(done.stdout)["linear_probe"] == saved["linear_probe"]
