"""The trainer: a real digits run, checkpoint, resume equivalence, refusals, NaN stop, torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from rkdo.training import (
    TrainConfig,
    TrainingError,
    load_run,
    train,
)
from rkdo.training import components as training_components


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoint.pt", weights_only=True)["model"]


def test_resume_gives_the_same_weights_and_metrics(
    tmp_path: Path, fast: TrainConfig, train_lines,
) -> None:
    config = replace(fast, eval_protocol="full", probe_train_size=300)
    straight = tmp_path / "straight"
    result = train(config, straight, progress=False)
    interrupted = tmp_path / "interrupted"
    stopped = train(config, interrupted, progress=False, stop_after=5)
    assert stopped == {"stopped_at": 5}
    assert torch.load(interrupted / "checkpoint.pt", weights_only=True)["step"] == 5
    resumed = train(None, interrupted, resume=True, progress=False)  # type: ignore[arg-type]

    a, b = _weights(straight), _weights(interrupted)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert train_lines(straight) == train_lines(interrupted)
    for key in ("linear_probe", "knn_acc_20", "nmi", "heldout_icon_loss"):
        assert resumed[key] == pytest.approx(result[key], abs=1e-9), key
    # the run directory holds what the issue promises
    for name in ("config.json", "metrics.jsonl", "checkpoint.pt", "eval.json"):
        assert (straight / name).exists(), name
    assert json.loads((straight / "config.json").read_text()) == json.loads(
        json.dumps(config.__dict__))
    evaluation = json.loads((straight / "eval.json").read_text())
    assert 0.0 <= evaluation["linear_probe"] <= 1.0 and evaluation["step"] == 8


def test_training_moves_the_weights_and_logs_every_step(
    tmp_path: Path, fast: TrainConfig, train_lines,
) -> None:
    run = tmp_path / "run"
    train(fast, run, progress=False)
    lines = train_lines(run)
    steps = [line["step"] for line in lines if "loss" in line]
    assert steps == list(range(1, 9))
    epochs = [line for line in lines if line.get("kind") == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    losses = [line["loss"] for line in lines if "loss" in line and line["step"] <= 4]
    assert epochs[0]["mean_loss"] == pytest.approx(np.mean(losses), rel=1e-6)
    loaded = load_run(run)
    torch.manual_seed(fast.seed)
    from rkdo.vision.models import build_model

    fresh = build_model("small-cnn", 1, 8, embedding_dim=16, hidden_dim=32)
    pairs = zip(fresh.state_dict().values(), loaded.model.state_dict().values(), strict=True)
    moved = [not torch.equal(p, q) for p, q in pairs]
    assert any(moved)
    assert loaded.step == 8


def test_eval_epochs_are_logged_once(tmp_path: Path, fast: TrainConfig, train_lines) -> None:
    config = replace(fast, eval_protocol="full", eval_epochs=[1], probe_train_size=200)
    run = tmp_path / "run"
    train(config, run, progress=False)
    evals = [line for line in train_lines(run) if line.get("kind") == "eval"]
    assert [e["epoch"] for e in evals] == [1, 2]


def test_nan_loss_stops_with_the_step_and_keeps_the_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast: TrainConfig
) -> None:
    real_build = training_components.build_loss

    class PoisonAfter(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner, self.calls = inner, 0

        def forward(self, *args, **kwargs):
            self.calls += 1
            value = self.inner(*args, **kwargs)
            return value * float("nan") if self.calls >= 4 else value

    monkeypatch.setattr(training_components, "build_loss",
                        lambda *a, **k: PoisonAfter(real_build(*a, **k)))
    run = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"non-finite loss .* at step 4;.*checkpoint"):
        train(replace(fast, checkpoint_every=2), run, progress=False)
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 2
    # logging rarely, the checkpoint at step 4 sees the NaN and keeps step 2's
    rare = tmp_path / "rare"
    with pytest.raises(TrainingError, match=r"non-finite loss .*step 4;.*kept"):
        train(replace(fast, checkpoint_every=2, log_every=100), rare, progress=False)
    assert torch.load(rare / "checkpoint.pt", weights_only=True)["step"] == 2


def test_batch_larger_than_the_dataset_is_refused(tmp_path: Path, fast: TrainConfig) -> None:
    with pytest.raises(ValueError, match=r"batch size 5000 is larger than the digits training"):
        train(replace(fast, batch_size=5000), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_image_size_that_throws_away_the_image_is_refused(
    tmp_path: Path, fast: TrainConfig,
) -> None:
    with pytest.raises(ValueError, match="image size 3 would throw away"):
        train(replace(fast, image_size=3), tmp_path / "run", progress=False)


@pytest.mark.parametrize("method", ["supcon", "tsne", "cluster"])
def test_other_presets_train(tmp_path: Path, method: str, fast: TrainConfig, train_lines) -> None:
    config = replace(fast, method=method, epochs=1, perplexity=5.0)
    train(config, tmp_path / method, progress=False)
    losses = [line["loss"] for line in train_lines(tmp_path / method) if "loss" in line]
    assert all(np.isfinite(losses)) and len(losses) == 4


def test_torchrun_data_parallel_run(tmp_path: Path) -> None:
    """Two real processes (gloo) train one run; only rank 0 writes."""
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", str(29500 + os.getpid() % 1000), "-m", "rkdo", "train",
        "--out", str(run), "--dataset", "digits", "--epochs", "1", "--steps-per-epoch", "3",
        "--batch-size", "32", "--embedding-dim", "16", "--hidden-dim", "32",
        "--eval-protocol", "none", "--log-every", "1", "--no-progress",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if "loss" in line] == [1, 2, 3]  # written once
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["step"] == 3
    assert not any(key.startswith("module.") for key in state["model"])


def test_temporal_recursion_resumes_with_its_teacher_field(
    tmp_path: Path, fast: TrainConfig,
) -> None:
    config = replace(fast, method="icon", recursion="temporal", alpha_schedule="cosine",
                     alpha=0.6, record_field=5, record_every=4)
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    train(config, straight, progress=False)
    train(config, interrupted, progress=False, stop_after=3)
    train(None, interrupted, resume=True, progress=False)  # type: ignore[arg-type]
    a = torch.load(straight / "checkpoint.pt", weights_only=True)
    b = torch.load(interrupted / "checkpoint.pt", weights_only=True)
    assert a["loss"].keys() == b["loss"].keys() and len(a["loss"]) > 0
    for key in a["loss"]:
        assert torch.equal(a["loss"][key], b["loss"][key]), key
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    # the field moved away from the static target for the samples it has seen:
    # 8 steps of 32 samples, each seen sample keeps (1 - alpha_t) of its static weight
    weight = a["loss"]["static_weight"]
    assert 0 < int((weight < 1).sum()) <= 8 * 32 and float(weight.min()) < 0.5
    fields = np.load(straight / "fields.npz")
    assert fields["teacher"].shape == (3, 5, 5)
    np.testing.assert_allclose(fields["teacher"].sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize(("classes", "probe", "message"), [
    (1, None, "the training split has 1 class; the linear probe needs at least 2"),
    (10, 5, "--probe-train-size 5 is smaller than the 10 classes"),
])
def test_data_the_evaluation_cannot_use_is_refused_before_training(
    tmp_path: Path, fast: TrainConfig, monkeypatch: pytest.MonkeyPatch, classes: int, probe,
    message: str,
) -> None:
    from rkdo.vision import data as data_module

    real = data_module.load

    def few_classes(*args, **kwargs):
        data = real(*args, **kwargs)
        keep = data.train.labels < classes
        train_split = data_module.ImageData(data.train.images[keep], data.train.labels[keep])
        return data_module.DatasetSplits(data.name, train_split, data.test, data.classes)

    monkeypatch.setattr(data_module, "load", few_classes)
    config = replace(fast, eval_protocol="full", probe_train_size=probe)
    with pytest.raises(ValueError, match=message):
        train(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_flat_image_folder_trains_with_its_holdout_fraction(
    tmp_path: Path, fast: TrainConfig,
) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        for k in range(20):
            folder = tmp_path / "images" / name
            folder.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels, mode="RGB").save(folder / f"{k:02d}.png")
    config = replace(fast, dataset=f"imagefolder:{tmp_path / 'images'}", image_size=32,
                     holdout_fraction=0.25, batch_size=8, epochs=1, steps_per_epoch=2,
                     eval_protocol="none")
    train(config, tmp_path / "run", progress=False)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["holdout_fraction"] == 0.25
    run = load_run(tmp_path / "run")
    assert (len(run.data.train), len(run.data.test)) == (30, 10)


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5])
def test_a_holdout_fraction_outside_the_open_unit_interval_is_refused(
    tmp_path: Path, fast: TrainConfig, fraction: float,
) -> None:
    with pytest.raises(ValueError, match=r"holdout-fraction must lie in \(0, 1\)"):
        train(replace(fast, holdout_fraction=fraction), tmp_path / "run", progress=False)
