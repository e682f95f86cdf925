"""GPU throughput of a training step, RKDO vs I-Con (issue 12, part 4); JSON out.

One step = a random batch of uint8 images gathered on the device, two views from
:class:`rkdo.vision.augment.TwoViews` (augmented on the device), ``z1 = model(v1)``,
``z2 = model(v2)``, the loss (``rkdo.methods`` presets ``icon`` and ``rkdo``), backward and Adam
(lr 1e-3, weight decay 1e-5), as the trainer does it. Timed with device synchronisations around
the augmentation, so each cell reports

- ``images_per_s``: batch / median step time (each image gives two views);
- ``data_share``: median augmentation time / median step time.

Grid: encoders (``resnet18``, the notebooks' ImageNet stem, and ``small-cnn``) at 32 px RGB,
batch 256 and 512, fp32 and bf16 autocast (forward and loss under autocast; the losses compute
their similarities in float32), ``torch.compile`` of the model off and on, I-Con and RKDO.
Then Fashion-MNIST (``rkdo.vision.data.load``; random images of the same shape where the files
are missing, marked ``"synthetic"``) with the small CNN, 1 channel, 28 px: epochs per minute
extrapolated from the median step (an epoch is ``ceil(60000 / batch)`` steps).

Cells run eager first, then Fashion-MNIST, then compiled (compilation is the slow part); a cell
that would start after ``--budget-s`` seconds is recorded as skipped, so one run fits the
device tool's 8-minute slot. A compiled model is shared by the two methods of its cell (the
loss is not compiled). Errors are recorded per cell and the run goes on.

    python benchmarks/gpu_throughput.py --out gpu_throughput.json
    python benchmarks/gpu_throughput.py --smoke --out /tmp/gpu_smoke.json   # CPU, ~4 min

``--smoke`` (batch 8, 2 timed steps, 64 images) proves the script on a CPU: 226 s on 2 shared
cores, 190 of them compiling (``--compile off`` alone: about 30 s).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rkdo.losses import IConLoss, RKDOLoss
from rkdo.methods import get as get_method
from rkdo.vision.augment import TwoViews
from rkdo.vision.data import DataError, load
from rkdo.vision.models import build_model

METHODS = ("icon", "rkdo")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_step(
    model: nn.Module, loss_fn: IConLoss | RKDOLoss, views: TwoViews, images: Tensor, batch: int,
    bf16: bool,
) -> Callable[[], tuple[float, float]]:
    """A training step that returns (augmentation seconds, step seconds)."""
    device = images.device
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)

    def step() -> tuple[float, float]:
        _sync(device)
        start = time.perf_counter()
        index = torch.randint(images.shape[0], (batch,), device=device)
        v1, v2 = views(images[index])
        _sync(device)
        augmented = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(model(v1), model(v2))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _sync(device)
        return augmented - start, time.perf_counter() - start

    return step


def time_steps(step: Callable[[], tuple[float, float]], warmup: int, steps: int) -> dict:
    start = time.perf_counter()
    for _ in range(warmup):
        step()
    warmup_s = time.perf_counter() - start
    augment, total = zip(*(step() for _ in range(steps)), strict=True)
    step_s, augment_s = statistics.median(total), statistics.median(augment)
    return {"step_ms": step_s * 1e3, "augment_ms": augment_s * 1e3,
            "data_share": augment_s / step_s, "warmup_s": warmup_s}


def run_cell(cell: dict, model: nn.Module, images: Tensor, args: argparse.Namespace) -> dict:
    """Time one (encoder, batch, precision, compile, method) cell; errors are recorded."""
    views = TwoViews(cell["size"], images.shape[1])
    loss_fn = get_method(cell["method"])
    step = make_step(model, loss_fn, views, images, cell["batch"], cell["precision"] == "bf16")
    try:
        timing = time_steps(step, args.warmup, args.steps)
    except Exception as error:  # a failed compile or OOM must not end the run
        return {**cell, "error": f"{type(error).__name__}: {error}"[:500]}
    return {**cell, **timing, "images_per_s": cell["batch"] / timing["step_ms"] * 1e3}


def fashion_images(device: torch.device, pool: int | None) -> tuple[Tensor, str]:
    """Fashion-MNIST training images on ``device`` (random ones if the files are missing)."""
    try:
        images, source = load("fashion-mnist").train.images, "fashion-mnist"
    except DataError:
        images = torch.randint(0, 256, (60_000, 1, 28, 28), dtype=torch.uint8)
        source = "synthetic (fashion-mnist files not found)"
    return (images if pool is None else images[:pool]).to(device), source


def grid(args: argparse.Namespace) -> list[dict]:
    cells = [
        {"encoder": encoder, "batch": batch, "size": args.size, "precision": precision,
         "compile": compiled}
        for compiled in args.compile for encoder in args.encoders for batch in args.batches
        for precision in args.precisions
    ]
    return cells


def run(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    start = time.perf_counter()
    results: list[dict] = []
    rgb = torch.randint(0, 256, (args.pool, 3, args.size, args.size), dtype=torch.uint8,
                        device=device)
    fashion, source = fashion_images(device, args.pool if args.smoke else None)
    cells = grid(args)
    order = [c for c in cells if c["compile"] == "off"] + ["fashion"] + [
        c for c in cells if c["compile"] == "on"]
    for cell in order:
        if time.perf_counter() - start > args.budget_s:
            results.append({"cell": cell, "skipped": "time budget spent"})
            continue
        if cell == "fashion":
            results += fashion_cells(args, fashion, source, device)
            continue
        model = build_model(cell["encoder"], 3, cell["size"]).to(device)
        if cell["compile"] == "on":
            model = torch.compile(model)
        for method in METHODS:
            results.append(run_cell({**cell, "method": method}, model, rgb, args))
            print(json.dumps(results[-1]), flush=True)
    return {"environment": environment(device, args), "elapsed_s": time.perf_counter() - start,
            "results": results}


def fashion_cells(args: argparse.Namespace, images: Tensor, source: str,
                  device: torch.device) -> list[dict]:
    """Epochs per minute of the small CNN on Fashion-MNIST (1 channel, 28 px), per method."""
    out = []
    steps_per_epoch = math.ceil(60_000 / args.fashion_batch)
    for method in METHODS:
        model = build_model("small-cnn", 1, 28).to(device)
        cell = {"encoder": "small-cnn", "dataset": source, "batch": args.fashion_batch,
                "size": 28, "precision": "fp32", "compile": "off", "method": method}
        row = run_cell(cell, model, images, args)
        if "step_ms" in row:
            row["epochs_per_min"] = 60.0 / (steps_per_epoch * row["step_ms"] / 1e3)
        out.append(row)
        print(json.dumps(row), flush=True)
    return out


def environment(device: torch.device, args: argparse.Namespace) -> dict[str, Any]:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    return {"torch": torch.__version__, "device": str(device), "device_name": name,
            "threads": torch.get_num_threads(), "smoke": args.smoke, "steps": args.steps,
            "warmup": args.warmup, "budget_s": args.budget_s}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--smoke", action="store_true",
                        help="batch 8, 2 timed steps: proves the script on a CPU")
    parser.add_argument("--encoders", nargs="+", default=["resnet18", "small-cnn"])
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"),
                        default=["fp32", "bf16"])
    parser.add_argument("--compile", nargs="+", choices=("off", "on"), default=["off", "on"])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per cell")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps (compile) per cell")
    parser.add_argument("--pool", type=int, default=8192, help="random RGB images held")
    parser.add_argument("--fashion-batch", type=int, default=256)
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="start no cell after this many seconds (default 420)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.batches, args.steps, args.warmup, args.pool = [8], 2, 1, 64
        args.fashion_batch = 8
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    report = run(args, device)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out} ({report['elapsed_s']:.0f} s)")


if __name__ == "__main__":
    main()
