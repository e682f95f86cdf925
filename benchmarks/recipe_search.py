"""Recipe search: short training runs over a few candidate settings, scored on a validation split.

Every candidate trains with ``validation_size`` training images held out (the last ones of a
fixed seeded permutation, :func:`rkdo.training.components.validation_splits`) and is evaluated on
them: a linear probe on ``probe_train_size`` of the remaining training images and weighted k-NN
(k = 200 and 20) against all of them. The official test split is never read. The candidates
differ in temperature, crop scale, batch size, learning rate and encoder width; each has a fixed
number of epochs sized to a few minutes on 2 shared cores, and its wall time and the machine's
load are recorded, so a reader can see what a candidate cost.

    OMP_WAIT_POLICY=PASSIVE PYTHONPATH=src python benchmarks/recipe_search.py \\
        --dataset fashion-mnist --out runs/recipe-search

Runs already finished in ``--out`` (their ``search.json`` exists) are read back, not retrained.

``--curves RUN...`` instead reads finished (or running) ``rkdo train`` run directories and
prints every evaluation with the wall minutes at which it ended, and draws accuracy against wall
minutes (``--figure``). The wall time of a run is read from its ``metrics.jsonl``: each train
line reports the images per second since the previous one, so ``steps * batch / images_per_s``
summed over lines is the wall time between the first step and that line (evaluations and
checkpoints after a line fall into the next window); an evaluation adds its own
``eval_seconds``. Set-up before the first step (loading data) is left out.
The table is printed and written into ``--markdown`` (default ``docs/results/recipe.md``)
between the markers ``<!-- search:DATASET:begin -->`` and ``<!-- search:DATASET:end -->``, so
the rest of that file is kept.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from rkdo.training import TrainConfig, train  # noqa: E402

# Shared by every candidate of a dataset; the candidates override some of it.
BASE = {
    "fashion-mnist": dict(
        dataset="fashion-mnist", encoder="small-cnn", method="icon", debias=0.2,
        embedding_dim=64, hidden_dim=512, batch_size=256, lr=1e-3, weight_decay=1e-5,
        lr_schedule="warmup-cosine", warmup_steps=100, validation_size=10_000,
        probe_train_size=10_000, eval_protocol="full", log_every=50, epochs=4,
        channels_last=True, compile=True,
    ),
    "digits": dict(
        dataset="digits", encoder="small-cnn", method="icon", debias=0.2, embedding_dim=64,
        hidden_dim=512, batch_size=64, lr=1e-3, weight_decay=1e-5, lr_schedule="warmup-cosine",
        warmup_steps=50, validation_size=300, eval_protocol="full", log_every=50, epochs=30,
    ),
}

# name -> overrides of BASE; "ref" is the current defaults (tau 0.5, crop 0.2, jitter 0.4).
CANDIDATES = {
    "fashion-mnist": {
        "ref": {},
        "t0.2": {"temperature": 0.2},
        "t0.2-c0.4": {"temperature": 0.2, "crop_scale": 0.4},
        "t0.1-c0.4": {"temperature": 0.1, "crop_scale": 0.4},
        "t0.2-c0.4-b512": {"temperature": 0.2, "crop_scale": 0.4, "batch_size": 512,
                           "lr": 2e-3, "warmup_steps": 50},
        "t0.2-c0.4-w32": {"temperature": 0.2, "crop_scale": 0.4, "width": 32, "epochs": 2},
        "t0.3-c0.4-lr3e-3": {"temperature": 0.3, "crop_scale": 0.4, "lr": 3e-3},
        "t0.2-c0.6": {"temperature": 0.2, "crop_scale": 0.6},
        "t0.2-c0.4-j0.8": {"temperature": 0.2, "crop_scale": 0.4, "jitter": 0.8},
        "t0.2-c0.4-e8": {"temperature": 0.2, "crop_scale": 0.4, "epochs": 8},
        "t0.2-c0.4-const": {"temperature": 0.2, "crop_scale": 0.4, "lr_schedule": "none",
                            "warmup_steps": 0},
        "t0.2-c0.4-const-w32": {"temperature": 0.2, "crop_scale": 0.4, "lr_schedule": "none",
                                "warmup_steps": 0, "width": 32},
    },
    "digits": {
        "ref": {},
        "t0.2": {"temperature": 0.2},
        "t0.2-c0.4": {"temperature": 0.2, "crop_scale": 0.4},
        "t0.2-c0.6": {"temperature": 0.2, "crop_scale": 0.6},
        "t0.1-c0.4": {"temperature": 0.1, "crop_scale": 0.4},
        "t0.3-c0.4": {"temperature": 0.3, "crop_scale": 0.4},
        "t0.2-c0.4-w32": {"temperature": 0.2, "crop_scale": 0.4, "width": 32},
    },
}

COLUMNS = ("linear_probe", "knn_acc_200", "knn_acc_20", "nmi")


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def run_candidate(config: TrainConfig, out: Path) -> dict:
    """Train one candidate (or read its finished run back); its scores, wall time and load."""
    done = out / "search.json"
    if done.exists():
        return json.loads(done.read_text())
    load_before, start = _load(), time.perf_counter()
    scores = train(config, out, progress=False, overwrite=True)
    row = {"wall_min": (time.perf_counter() - start) / 60, "load_before": load_before,
           "load_after": _load(), **{k: scores[k] for k in COLUMNS}}
    done.write_text(json.dumps(row, indent=1))
    return row


def table(dataset: str, rows: dict[str, dict], configs: dict[str, TrainConfig]) -> str:
    head = ("| candidate | settings | epochs | linear probe | 200-NN | 20-NN | NMI | wall min "
            "| load 1/5/15 min before -> after |")
    lines = [head, "|" + "---|" * 9]
    best = max(rows, key=lambda n: rows[n]["linear_probe"] + rows[n]["knn_acc_200"])
    for name, row in rows.items():
        overrides = CANDIDATES[dataset][name]
        settings = ", ".join(f"{k}={v}" for k, v in overrides.items() if k != "epochs") or \
            "base settings"
        mark = " **(best)**" if name == best else ""
        lines.append(
            f"| {name}{mark} | {settings} | {configs[name].epochs} | {row['linear_probe']:.4f} "
            f"| {row['knn_acc_200']:.4f} | {row['knn_acc_20']:.4f} | {row['nmi']:.4f} "
            f"| {row['wall_min']:.1f} | {row['load_before']} -> {row['load_after']} |")
    return "\n".join(lines)


def write_markdown(path: Path, dataset: str, body: str) -> None:
    begin, end = f"<!-- search:{dataset}:begin -->", f"<!-- search:{dataset}:end -->"
    text = path.read_text() if path.exists() else "# A recipe that learns\n"
    block = f"{begin}\n{body}\n{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def curve(run: Path) -> tuple[dict, list[dict]]:
    """A run's config and its evaluations, each with ``wall_min`` (see the module docstring)."""
    config = json.loads((run / "config.json").read_text())
    wall, last_step, points = 0.0, 0, []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "images_per_s" in record:
            steps = record["step"] - last_step
            wall += steps * config["batch_size"] / record["images_per_s"]
            last_step = record["step"]
        elif record.get("kind") == "eval" and "linear_probe" in record:
            points.append({**record, "wall_min": (wall + record["eval_seconds"]) / 60})
    return config, points


def plot_curves(runs: list[Path], figure: Path) -> str:
    """Print each run's evaluations and draw accuracy against wall minutes into ``figure``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    lines = ["| run | method | epoch | wall min | linear probe | 200-NN | 20-NN |",
             "|---|---|---|---|---|---|---|"]
    for run in runs:
        config, points = curve(run)
        label = f"{run.name} ({config['method']}, {config.get('recursion', 'auto')})"
        for ax, key in zip(axes, ("linear_probe", "knn_acc_200"), strict=True):
            ax.plot([p["wall_min"] for p in points], [p[key] for p in points], "o-", label=label)
        lines += [f"| {run.name} | {config['method']} | {p['epoch']} | {p['wall_min']:.1f} "
                  f"| {p['linear_probe']:.4f} | {p['knn_acc_200']:.4f} | {p['knn_acc_20']:.4f} |"
                  for p in points]
    for ax, key, goal in zip(axes, ("linear probe", "200-NN"), (0.88, 0.85), strict=True):
        ax.axhline(goal, color="grey", ls="--", lw=1, label=f"goal {goal}")
        ax.set(xlabel="wall minutes (training + evaluations)", ylabel=f"{key} accuracy (test)",
               title=key)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=200)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist", choices=sorted(BASE))
    parser.add_argument("--out", default="runs/recipe-search")
    parser.add_argument("--only", nargs="*", help="candidate names to run (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", default="docs/results/recipe.md")
    parser.add_argument("--curves", nargs="+", type=Path, metavar="RUN",
                        help="print and plot the evaluations of these run directories instead")
    parser.add_argument("--figure", type=Path,
                        default=Path("docs/results/figures/recipe_accuracy.png"))
    args = parser.parse_args(argv)
    if args.curves:
        print(plot_curves(args.curves, args.figure))
        return
    torch.set_num_threads(args.threads)
    base = TrainConfig(**BASE[args.dataset], seed=args.seed)
    names = args.only or list(CANDIDATES[args.dataset])
    configs = {name: replace(base, **CANDIDATES[args.dataset][name]) for name in names}
    rows = {}
    for name, config in configs.items():
        rows[name] = run_candidate(config, Path(args.out) / args.dataset / name)
        print(f"{name}: {json.dumps(rows[name])}", flush=True)
    command = "OMP_WAIT_POLICY=PASSIVE PYTHONPATH=src python " + shlex.join(sys.argv)
    body = (f"Command: `{command}` (torch threads {args.threads}, seed {args.seed}).\n\n"
            f"Base settings: `{json.dumps(BASE[args.dataset])}`\n\n"
            + table(args.dataset, rows, configs))
    print(body)
    write_markdown(Path(args.markdown), args.dataset, body)


if __name__ == "__main__":
    main()
