"""``rkdo demo``: I-Con vs RKDO on scikit-learn's digits, same seed, encoder and budget.

Both methods train the same small CNN from the same initialisation on the same batches and
augmentations; both are scored with the same yardsticks on the held-out split (linear probe,
weighted k-NN, k-means, neighbourhood accuracy and the *same* static I-Con loss), next to the
untrained encoder as a floor. The training losses are different functions (RKDO's soft recursive
targets give smaller KL values by construction), so they are plotted but not compared.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from rkdo._io import read_jsonl
from rkdo.training.components import evaluate_initial
from rkdo.training.config import TrainConfig
from rkdo.training.rundir import METRICS_FILE
from rkdo.training.trainer import train
from rkdo.vision import data as data_module

__all__ = ["run_demo", "format_table", "DEMO_METRICS"]

DEMO_METRICS = (
    ("linear_probe", "linear probe acc", True),
    ("knn_acc_20", "20-NN acc", True),
    ("knn_acc_200", "200-NN acc (weighted)", True),
    ("neighbourhood_acc_5", "5-NN same-label share", True),
    ("nmi", "k-means NMI", True),
    ("ari", "k-means ARI", True),
    ("heldout_icon_loss", "held-out I-Con loss", False),
    ("train_loss", "final training loss*", False),
)


def format_table(results: dict[str, dict[str, Any]]) -> str:
    """A markdown table: one row per metric, one column per run."""
    names = list(results)
    lines = ["| metric | " + " | ".join(names) + " |",
             "|---|" + "---:|" * len(names)]
    for key, label, higher in DEMO_METRICS:
        if not any(key in r for r in results.values()):
            continue
        arrow = " (higher is better)" if higher else ""
        cells = [f"{results[n][key]:.4f}" if key in results[n] else "-" for n in names]
        lines.append(f"| {label}{arrow if key == 'linear_probe' else ''} | " + " | ".join(cells)
                     + " |")
    return "\n".join(lines)


def _training_curve(run_dir: Path) -> tuple[list[int], list[float]]:
    steps, losses = [], []
    for record in read_jsonl(run_dir / METRICS_FILE):
        if record.get("kind", "train") == "train" and "loss" in record:
            steps.append(record["step"])
            losses.append(record["loss"])
    return steps, losses


def _figure(out: Path, results: dict[str, dict[str, Any]], runs: dict[str, Path]) -> Path:
    """Training losses beside the shared held-out loss (left); the held-out scores as points,
    one row per score, so a difference of 0.005 stays visible (right). One seed: no error bars."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.2, 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    colours = {"untrained": "#9e9e9e", "I-Con": "#1f77b4", "RKDO": "#d62728"}
    for name, run_dir in runs.items():
        steps, losses = _training_curve(run_dir)
        left.plot(steps, losses, label=f"{name}: training loss (its own)", color=colours[name])
        left.axhline(results[name]["heldout_icon_loss"], color=colours[name], ls="--", lw=1,
                     label=f"{name}: held-out I-Con loss")
    left.axhline(results["untrained"]["heldout_icon_loss"], color=colours["untrained"], ls=":",
                 lw=1, label="untrained: held-out I-Con loss")
    left.set_xlabel("training step")
    left.set_ylabel("loss (nats)")
    left.set_title("different functions; dashed: the shared yardstick", fontsize=9)
    left.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2,
                frameon=False)
    keys = [("linear_probe", "linear probe"), ("knn_acc_20", "20-NN"),
            ("neighbourhood_acc_5", "5-NN share"), ("nmi", "k-means NMI")]
    for offset, name in enumerate(results):
        shift = (offset - (len(results) - 1) / 2) * 0.18
        right.plot([results[name][k] for k, _ in keys], [i + shift for i in range(len(keys))],
                   "o", label=name, color=colours[name])
    right.set_yticks(range(len(keys)), [label for _, label in keys])
    right.set_ylim(len(keys) - 0.5, -0.5)
    right.set_xlabel("held-out score (higher is better)")
    right.grid(axis="x", alpha=0.3)
    right.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3,
                 frameon=False)
    path = out / "demo.png"
    fig.savefig(path, dpi=200)
    return path


def run_demo(
    out: str | Path = "runs/demo",
    *,
    epochs: int = 30,
    seed: int = 0,
    overwrite: bool = True,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Train I-Con and RKDO on digits, print the comparison and save ``demo.png``."""
    out = Path(out)
    base = dict(dataset="digits", encoder="small-cnn", epochs=epochs, batch_size=128, seed=seed,
                log_every=5)
    configs = {
        "I-Con": TrainConfig(method="icon", **base),
        "RKDO": TrainConfig(method="rkdo", **base),
    }
    results: dict[str, dict[str, Any]] = {"untrained": evaluate_initial(configs["I-Con"])}
    runs: dict[str, Path] = {}
    for name, config in configs.items():
        run_dir = out / name.lower().replace("-", "")
        start = time.perf_counter()
        result = train(config, run_dir, overwrite=overwrite, progress=progress)
        result["train_seconds"] = time.perf_counter() - start
        steps, losses = _training_curve(run_dir)
        result["train_loss"] = losses[-1]
        results[name], runs[name] = result, run_dir
    table = format_table(results)
    figure = _figure(out, results, runs)
    (out / "demo.md").write_text(table + "\n")
    print()
    print(f"digits, small CNN, {epochs} epochs, batch 128, seed {seed}, "
          f"{torch.get_num_threads()} thread(s); held-out split of "
          f"{_test_size(configs['I-Con'])} images")
    print(table)
    print("* each method's own training loss: different functions, not comparable; compare the "
          "held-out I-Con loss instead.")
    seconds = ", ".join(f"{name} {results[name]['train_seconds']:.1f} s" for name in configs)
    print(f"training wall time: {seconds} (not in the table: it depends on the machine)")
    print(f"figure: {figure}")
    print(f"runs:   {', '.join(str(p) for p in runs.values())}")
    return results


def _test_size(config: TrainConfig) -> int:
    return len(data_module.load(config.dataset, config.data_root,
                                holdout_fraction=config.holdout_fraction).test)
