"""checkpoint.pt and config.json on disk: damaged, foreign or edited files are one clear line;
only finite state is ever checkpointed; finished runs, extended runs, periodic checkpoints."""

from __future__ import annotations

import json
import pickle
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from rkdo.training import TrainConfig, TrainingError, load_run, train
from rkdo.training import loop as training_loop


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run on digits stopped after 2 steps (a checkpoint to damage, copied per test)."""
    run = tmp_path_factory.mktemp("source") / "run"
    config = TrainConfig(dataset="digits", epochs=2, steps_per_epoch=4, batch_size=32,
                         embedding_dim=16, hidden_dim=32, eval_protocol="none", seed=3)
    train(config, run, progress=False, stop_after=2)
    return run


@pytest.fixture
def run(stopped_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(stopped_run, copy)
    return copy


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def _damage(run: Path, how: str) -> None:
    path = run / "checkpoint.pt"
    if how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "junk":
        path.write_bytes(b"not a checkpoint at all\n" * 10)
    elif how == "foreign":
        torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    elif how == "pickle":
        path.write_bytes(pickle.dumps({"model": Payload()}))
    elif how == "payload":
        torch.save({"model": Payload()}, path)


@pytest.mark.parametrize(("how", "message"), [
    ("truncated", "cannot be read, it is truncated or damaged"),
    ("empty", "cannot be read, it is truncated or damaged"),
    ("junk", "is not a checkpoint"),
    ("foreign", r"is not an rkdo checkpoint \(missing model, loss"),
    ("pickle", "is not a checkpoint"),
    ("payload", "holds objects that the safe loader refuses to run"),
])
def test_a_damaged_or_foreign_checkpoint_is_one_line(
    run: Path, how: str, message: str, capsys: pytest.CaptureFixture[str],
) -> None:
    _damage(run, how)
    for attempt in (lambda: train(None, run, resume=True, progress=False),
                    lambda: load_run(run)):
        with pytest.raises(ValueError, match=message) as error:
            attempt()
        text = str(error.value)
        assert "checkpoint.pt" in text and "\n" not in text
        assert "weights_only" not in text and "--overwrite" in text
    assert "must never run" not in capsys.readouterr().out


def test_a_checkpoint_that_does_not_fit_an_edited_config_is_one_line(run: Path) -> None:
    values = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**values, "embedding_dim": 24}))
    for attempt in (lambda: train(None, run, resume=True, progress=False),
                    lambda: load_run(run)):
        with pytest.raises(ValueError, match=r"does not fit the model that .*config.json "
                                             r"describes \(size mismatch for .*edited"):
            attempt()


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", r"config.json is not valid JSON"),
    ('["a list"]', r"config.json must hold a JSON object"),
    ('{"lr": "0.001"}', r"config.json: lr must be a number, got '0.001' \(str\)"),
    ('{"epochs": "1"}', r"config.json: epochs must be an integer, got '1'"),
    ('{"seed": null}', r"config.json: seed must be an integer, got None"),
])
def test_a_bad_config_json_names_the_file_and_the_key(run: Path, text: str, message: str) -> None:
    (run / "config.json").write_text(text)
    for attempt in (lambda: train(None, run, resume=True, progress=False),
                    lambda: load_run(run)):
        with pytest.raises(ValueError, match=message):
            attempt()


def test_non_finite_weights_are_never_checkpointed_nor_evaluated(
    tmp_path: Path, run: Path, fast: TrainConfig,
) -> None:
    # SGD at lr 1e6 blows up the weights (BatchNorm running_var first) within a few steps
    diverging = replace(fast, optimizer="sgd", lr=1e6, checkpoint_every=1, log_every=1)
    with pytest.raises(TrainingError, match=r"non-finite (loss|weights)"):
        train(diverging, tmp_path / "diverged", progress=False)
    if (tmp_path / "diverged" / "checkpoint.pt").exists():
        load_run(tmp_path / "diverged")  # what was kept is finite, so it loads
    # a checkpoint with a NaN BatchNorm statistic (as older versions kept) is refused by eval
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    key = next(k for k in state["model"] if k.endswith("running_var"))
    state["model"][key][0] = float("nan")
    torch.save(state, run / "checkpoint.pt")
    with pytest.raises(ValueError, match=rf"non-finite weights \({key}\).*cannot be evaluated"):
        load_run(run)


def test_a_finished_run_resumes_to_its_result_and_more_epochs_extend_it(
    tmp_path: Path, fast: TrainConfig, train_lines,
) -> None:
    run = tmp_path / "run"
    config = replace(fast, epochs=1, eval_protocol="full", probe_train_size=300)
    first = train(config, run, progress=False)
    lines = train_lines(run)
    again = train(None, run, resume=True, progress=False)
    assert again == json.loads((run / "eval.json").read_text()) == first
    assert train_lines(run) == lines  # no second final evaluation line
    with pytest.raises(ValueError, match="--alpha, --lr cannot change when resuming"):
        train(None, run, resume=True, progress=False, changes={"lr": 0.1, "alpha": 0.2})
    longer = train(None, run, resume=True, progress=False, changes={"epochs": 2})
    assert longer["epoch"] == 2 and longer["step"] == 8
    assert json.loads((run / "config.json").read_text())["epochs"] == 2
    evals = [line["epoch"] for line in train_lines(run) if line.get("kind") == "eval"]
    assert evals == [1, 2]
    cosine = tmp_path / "cosine"
    train(replace(fast, lr_schedule="cosine"), cosine, progress=False, stop_after=1)
    with pytest.raises(ValueError, match=r"--epochs cannot extend .*--lr-schedule cosine"):
        train(None, cosine, resume=True, progress=False, changes={"epochs": 5})


def test_checkpoints_are_written_by_time_too(
    tmp_path: Path, fast: TrainConfig, monkeypatch: pytest.MonkeyPatch,
) -> None:
    saved: list[int] = []
    real = training_loop.save_checkpoint
    monkeypatch.setattr(training_loop, "save_checkpoint",
                        lambda out, state: (saved.append(state["step"]), real(out, state)))
    train(fast, tmp_path / "often", progress=False, checkpoint_minutes=1e-9)
    assert saved == [1, 2, 3, 4, 5, 6, 7, 8, 8]  # every step here, and at the end
    saved.clear()
    train(fast, tmp_path / "default", progress=False)
    assert saved == [8]  # a 1-second run: only the final one
