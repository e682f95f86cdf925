"""GPU throughput: training steps, PIL pipeline, losses to OOM, an embedding, KernelClustering.

Five parts (``--parts``, default all), one JSON (``--out``) and one markdown table (``--table``,
default ``--out`` with ``.md``), both rewritten after every part and every clustering cell, so a
run stopped at its time limit keeps what it finished; a part (or clustering cell) that would
start after ``--budget-s`` seconds is recorded as skipped, and errors are recorded per cell.

1. **Training steps**: a random batch of uint8 32 px RGB images on the device, two views by
   :class:`rkdo.vision.augment.TwoViews` (on the device), ``model(v1)``, ``model(v2)``, the
   loss (``rkdo.methods`` presets ``icon`` and ``rkdo``), backward, Adam, as the trainer does.
   Grid: ResNet-18 with the CIFAR stem (``resnet18-cifar``) and the small CNN; batch 256 / 512 /
   1024; fp32 / bf16 autocast (the losses compute similarities in float32); contiguous /
   channels_last; ``torch.compile`` of the model off, and on at ``--compile-batches`` (512)
   with ``--compile-layouts`` (channels_last): 4 compiled cells, run after the eager ones.
   Per cell: images/s (batch / median step), data share (augmentation / step, with device
   syncs around it) and, in the table, the RKDO / I-Con step-time ratio.
2. **The reference pipeline**: per-image PIL augmentation with torchvision's transforms (the
   notebooks' recipe, in this process, no worker processes) feeding the same step of ResNet-18
   CIFAR at batch 256 fp32 on the device: steps/s and data share, beside part 1's steps/s.
3. **Losses to OOM**: forward + backward of RKDO depth 3 and I-Con, materialised fused path
   (``streaming=False``) and streaming (``streaming=True``), lightly's NT-Xent (2B x 2B) and
   the notebooks' plain softmax + ``kl_div`` (``benchmarks/loss_speed.py``), at B = 512 ...
   65,536 (d = 64): median ms and peak memory (``max_memory_allocated``) until each runs out.
4. **NeighbourEmbedding** (t-SNE objective, exact/auto method) on Fashion-MNIST's 70,000
   images with ``device="cuda"``: fit seconds (random pixels, labelled so, if the files are
   missing).
5. **KernelClustering** (issue 18, item 5) with its defaults, ``random_state=0`` and
   ``device="cuda"``, one cell per ``--cluster-points`` (default 70000), smallest first: up to
   70,000 a seeded subset of Fashion-MNIST's train + test images (all of them at 70,000, pixels
   in [0, 1], as ``benchmarks/clustering.py`` loads them), above that the Fashion-MNIST 1M
   construction of ``benchmarks/clustering_scale.py`` (originals + rotated and shifted copies,
   built on the CPU: ``build_s``, not in the fit). Per cell: fit seconds between
   ``torch.cuda.synchronize`` calls, peak device memory (``max_memory_allocated``, reset before
   the fit), the process's peak RSS, NMI and ARI against the labels, epochs run, and the fit's
   stages (wall seconds, by wrapping the estimator's internals as ``clustering_scale.py``
   does; a stage ends when its Python call returns, and training syncs every step). An
   untimed 1,000-point fit on the device comes first (CUDA context, kernels). The data is
   loaded before any part starts: without the IDX files (``--fashion-root DIR``, default the
   system folder) a run that asked for ``--parts clustering`` stops at once with a message
   naming that flag, and the default run (no ``--parts``) records the part as skipped with
   that message and runs the other four; above 100,000 points
   pynndescent must be importable (checked at the start too).

    python benchmarks/gpu_throughput.py --out docs/results/gpu/gpu_throughput.json
    python benchmarks/gpu_throughput.py --smoke --out /tmp/gpu_smoke.json   # CPU, seconds

On the device machine (one H200, 16 cores, no network), the clustering rows alone, with the data
and pynndescent's wheel carried in ``.device/`` (docs/results/gpu.md: how to make it; ~7 min:
70k ~0.5 min, the 1M set's construction ~1.5 min and its fit ~4-5 min, most of both on one CPU
core; ``timeout_s`` 570, ``carry`` [".device"])::

    set -o pipefail; python3 -m pip install -q --no-index --no-deps --no-compile \
      --no-cache-dir --target /tmp/site .device/whl/*.whl && \
    export PYTHONPATH=$PWD/src:/tmp/site PYTHONUNBUFFERED=1 && \
    python3 benchmarks/gpu_throughput.py --parts clustering --cluster-points 70000 1000000 \
      --fashion-root .device/fashion-mnist --out $OUT/gpu_clustering.json 2>&1 | tee $OUT/log.txt

``--smoke`` proves every part on a CPU at toy sizes (small CNN, batch 8, no compile, losses at
B = 32 / 64, a 300-point embedding, KernelClustering on 300 points: Fashion-MNIST if found,
else scikit-learn's digits); it is what the test suite runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rkdo.losses import IConLoss, RKDOLoss
from rkdo.methods import get as get_method
from rkdo.vision.augment import TwoViews
from rkdo.vision.idx import FASHION_MNIST_SYSTEM_ROOT
from rkdo.vision.models import build_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loss_speed import notebook_icon, notebook_rkdo  # noqa: E402

METHODS = ("icon", "rkdo")
PARTS = ("train", "pil", "losses", "embedding", "clustering")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_ms(call: Callable[[], Any], device: torch.device, warmup: int, steps: int) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(steps):
        _sync(device)
        start = time.perf_counter()
        call()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


# --- part 1: training steps -----------------------------------------------------------------

def make_step(model: nn.Module, loss_fn: nn.Module, views: Callable[[Tensor], tuple],
              images: Tensor, batch: int, bf16: bool, channels_last: bool,
              ) -> Callable[[], tuple[float, float]]:
    """A training step that returns (data seconds, step seconds)."""
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    layout = torch.channels_last if channels_last else torch.contiguous_format

    def step() -> tuple[float, float]:
        _sync(device)
        start = time.perf_counter()
        v1, v2 = (v.to(device, non_blocking=True).contiguous(memory_format=layout)
                  for v in views(images, batch))
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


def device_views(size: int, channels: int) -> Callable[[Tensor, int], tuple[Tensor, Tensor]]:
    augment = TwoViews(size, channels)

    def views(images: Tensor, batch: int) -> tuple[Tensor, Tensor]:
        return augment(images[torch.randint(images.shape[0], (batch,), device=images.device)])

    return views


def time_steps(step: Callable[[], tuple[float, float]], warmup: int, steps: int) -> dict:
    start = time.perf_counter()
    for _ in range(warmup):
        step()
    warmup_s = time.perf_counter() - start
    data, total = zip(*(step() for _ in range(steps)), strict=True)
    step_s, data_s = statistics.median(total), statistics.median(data)
    return {"step_ms": step_s * 1e3, "data_ms": data_s * 1e3, "data_share": data_s / step_s,
            "warmup_s": warmup_s}


def train_grid(args: argparse.Namespace) -> list[dict]:
    return [{"encoder": encoder, "batch": batch, "precision": precision, "layout": layout,
             "compile": compiled}
            for compiled in args.compile for encoder in args.encoders for batch in args.batches
            for precision in args.precisions for layout in args.layouts
            if compiled == "off" or (batch in args.compile_batches
                                     and layout in args.compile_layouts)]


def train_cell(cell: dict, images: Tensor, args: argparse.Namespace) -> list[dict]:
    """Both methods on one (encoder, batch, precision, layout, compile) cell."""
    device = images.device
    model = build_model(cell["encoder"], 3, args.size).to(device)
    if cell["layout"] == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    if cell["compile"] == "on":
        model = torch.compile(model)
    rows = []
    for method in METHODS:
        step = make_step(model, get_method(method), device_views(args.size, 3), images,
                         cell["batch"], cell["precision"] == "bf16",
                         cell["layout"] == "channels_last")
        try:
            timing = time_steps(step, args.warmup, args.steps)
            rows.append({**cell, "method": method, **timing,
                         "images_per_s": cell["batch"] / timing["step_ms"] * 1e3})
        except Exception as error:  # a failed compile or an OOM must not end the run
            rows.append({**cell, "method": method, "error": f"{type(error).__name__}: "
                                                            f"{error}"[:300]})
        print(json.dumps(rows[-1]), flush=True)
    return rows


# --- part 2: the reference's per-image PIL pipeline -----------------------------------------

def pil_views(size: int) -> Callable[[Tensor, int], tuple[Tensor, Tensor]]:
    """The notebooks' recipe with torchvision's PIL transforms, one image at a time."""
    from PIL import Image
    from torchvision import transforms

    recipe = transforms.Compose([
        transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(),
        transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        transforms.RandomGrayscale(p=0.2), transforms.ToTensor(),
        transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])

    def views(images: Tensor, batch: int) -> tuple[Tensor, Tensor]:
        chosen = images[torch.randint(images.shape[0], (batch,))].permute(0, 2, 3, 1).numpy()
        pictures = [Image.fromarray(array) for array in chosen]
        return (torch.stack([recipe(p) for p in pictures]),
                torch.stack([recipe(p) for p in pictures]))

    return views


def pil_cell(args: argparse.Namespace, device: torch.device) -> dict:
    images = torch.randint(0, 256, (args.pool, 3, args.size, args.size), dtype=torch.uint8)
    model = build_model(args.pil_encoder, 3, args.size).to(device)
    cell = {"pipeline": "PIL per image (torchvision transforms, in process)",
            "encoder": args.pil_encoder, "batch": args.pil_batch, "precision": "fp32"}
    out = {}
    for method in METHODS:
        step = make_step(model, get_method(method), pil_views(args.size), images,
                         args.pil_batch, False, False)
        timing = time_steps(step, 1, args.pil_steps)
        out[method] = {**timing, "steps_per_s": 1e3 / timing["step_ms"]}
    return {**cell, **out}


# --- part 3: the losses at growing batch ----------------------------------------------------

def loss_functions() -> dict[str, Callable[[Tensor, Tensor], Tensor]]:
    losses: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
        "rkdo RKDO depth 3 fused": RKDOLoss(streaming=False),
        "rkdo RKDO depth 3 streaming": RKDOLoss(streaming=True),
        "rkdo I-Con fused": IConLoss(streaming=False),
        "rkdo I-Con streaming": IConLoss(streaming=True),
        "plain RKDO depth 3 (notebooks)": notebook_rkdo,
        "plain I-Con (notebooks)": notebook_icon,
    }
    try:
        from lightly.loss import NTXentLoss
    except ImportError:
        return losses
    losses["lightly NT-Xent (2B x 2B)"] = NTXentLoss(temperature=0.5)
    return losses


def _peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def loss_cells(args: argparse.Namespace, device: torch.device, start: float) -> list[dict]:
    """Each loss at each batch until it runs out of memory (or the time budget is spent)."""
    rows = []
    for name, loss_fn in loss_functions().items():
        for batch in args.loss_batches:
            if time.perf_counter() - start > args.budget_s:
                rows.append({"loss": name, "batch": batch, "skipped": "time budget spent"})
                break
            _peak_reset(device)
            try:
                ms = _median_ms(_loss_call(loss_fn, batch, device), device, 1, args.loss_steps)
            except torch.OutOfMemoryError:
                rows.append({"loss": name, "batch": batch, "oom": True})
                break
            peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
            rows.append({"loss": name, "batch": batch, "ms": ms,
                         "peak_mib": None if peak is None else peak / 2 ** 20})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def _loss_call(loss_fn: Callable[[Tensor, Tensor], Tensor], batch: int,
               device: torch.device) -> Callable[[], None]:
    z1 = torch.randn(batch, 64, device=device, requires_grad=True)
    z2 = torch.randn(batch, 64, device=device, requires_grad=True)

    def call() -> None:
        z1.grad = z2.grad = None
        loss_fn(z1, z2).backward()

    return call


# --- part 4: NeighbourEmbedding -------------------------------------------------------------

def embedding_cell(args: argparse.Namespace, device: torch.device) -> dict:
    from rkdo.estimators import NeighbourEmbedding
    from rkdo.vision.data import DataError, load

    try:
        data = load("fashion-mnist", root=args.fashion_root)
        points = torch.cat([data.train.images, data.test.images]).flatten(1)
        source = "fashion-mnist train + test"
    except DataError:
        points = torch.randint(0, 256, (70_000, 784), dtype=torch.uint8)
        source = "synthetic (fashion-mnist files not found)"
    points = points[:args.embed_points].float().div_(255).numpy()
    estimator = NeighbourEmbedding(random_state=0, device=str(device),
                                   max_iter=args.embed_iter)
    start = time.perf_counter()
    estimator.fit(points)
    return {"data": source, "points": len(points), "max_iter": args.embed_iter,
            "device": str(device), "fit_s": time.perf_counter() - start}


# --- part 5: KernelClustering ---------------------------------------------------------------

FASHION_HELP = ("pass --fashion-root DIR, a folder with Fashion-MNIST's four IDX files (.gz or "
                "raw; docs/results/gpu.md says how to carry them to the device machine), or "
                "leave clustering out of --parts")


def fashion_originals(root: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """The 70,000 Fashion-MNIST images (train then test) as ``(n, 784)`` float32 in [0, 1] and
    their labels, as ``benchmarks/clustering.py`` loads them; ``DataError`` if missing."""
    from rkdo.vision.data import load

    splits = load("fashion-mnist", root=root)
    images = torch.cat([splits.train.images, splits.test.images]).flatten(1).numpy()
    labels = np.concatenate([np.asarray(splits.train.labels), np.asarray(splits.test.labels)])
    return images.astype(np.float32) / float(images.max()), labels.astype(np.int64)


def cluster_data(args: argparse.Namespace) -> tuple[str, tuple[np.ndarray, np.ndarray]]:
    """Fashion-MNIST's 70,000 originals; with ``--smoke`` scikit-learn's digits if the files
    are missing (the smoke proves the part, not the figure)."""
    from rkdo.vision.data import DataError

    where = "fashion-mnist" + ("" if args.fashion_root is None else f" ({args.fashion_root})")
    try:
        return where, fashion_originals(args.fashion_root)
    except DataError:
        if not args.smoke:
            raise
    from sklearn.datasets import load_digits

    digits = load_digits()
    return "digits (smoke: fashion-mnist not found)", (
        (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64))


def cluster_cell(name: str, originals: tuple[np.ndarray, np.ndarray], points: int,
                 device: torch.device) -> dict:
    """KernelClustering with its defaults (seed 0) on ``points`` of the construction of
    ``benchmarks/clustering_scale.py`` (a seeded subset up to 70,000, then deformed copies):
    fit seconds between device syncs, peak device memory, NMI and ARI, the fit's stages."""
    import warnings

    from clustering_scale import N_ORIGINAL, Monitor, _instrument, fashion_1m
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from rkdo.estimators import KernelClustering

    start = time.perf_counter()
    if len(originals[0]) < N_ORIGINAL:  # the smoke's stand-in: a seeded subset
        chosen = np.sort(np.random.default_rng(0).permutation(len(originals[0]))[:points])
        x, labels = originals[0][chosen], originals[1][chosen]
    else:
        x, labels, _ = fashion_1m(points, 0, originals)
    build_s = time.perf_counter() - start
    estimator = KernelClustering(random_state=0, device=str(device))
    _peak_reset(device)
    with Monitor() as monitor, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _instrument(monitor)
        _sync(device)
        start = time.perf_counter()
        estimator.fit(x)
        _sync(device)
        fit_s = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    predicted = estimator.labels_
    return {"data": name, "points": len(x), "device": str(device), "seed": 0,
            "build_s": build_s, "fit_s": fit_s,
            "peak_device_mib": None if peak is None else peak / 2 ** 20,
            "peak_rss_gib": _peak_rss_gib(),
            "nmi": float(normalized_mutual_info_score(labels, predicted)),
            "ari": float(adjusted_rand_score(labels, predicted)),
            # above 70,000 the same fit scored on its first 70,000 rows (the unchanged originals)
            "nmi_originals": (float(normalized_mutual_info_score(
                labels[:N_ORIGINAL], predicted[:N_ORIGINAL])) if len(x) > N_ORIGINAL else None),
            "n_iter": int(estimator.n_iter_), "n_neighbors": int(estimator.n_neighbors_),
            "load": [min(monitor.loads), max(monitor.loads)],
            "stages": [{"stage": stage["stage"], "depth": stage["depth"],
                        "seconds": stage["seconds"]} for stage in monitor.stages]}


def _peak_rss_gib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB on Linux


def cluster_cells(args: argparse.Namespace, device: torch.device, start: float,
                  save: Callable[[dict], None]) -> list[dict]:
    """One cell per ``--cluster-points``, smallest first; a cell that would start after
    ``--budget-s`` is skipped; each finished cell is saved at once (a killed run keeps it)."""
    name, originals = args.cluster_data or cluster_data(args)
    rows: list[dict] = []
    if device.type == "cuda":  # CUDA context, cuBLAS handles, kernels: not in the first cell
        from rkdo.estimators import KernelClustering

        KernelClustering(random_state=0, device=str(device), max_iter=2).fit(originals[0][:1000])
    for points in sorted(args.cluster_points):
        if time.perf_counter() - start > args.budget_s:
            rows.append({"data": name, "points": points, "skipped": "time budget spent"})
            continue
        print(f"[{time.strftime('%H:%M:%S')}] KernelClustering on {points:,} points, "
              f"{device}", flush=True)
        try:
            rows.append(cluster_cell(name, originals, points, device))
        except Exception as error:  # an OOM at 1M must not lose the 70k cell
            rows.append({"data": name, "points": points, "error": f"{type(error).__name__}: "
                                                                 f"{error}"[:300]})
        print(json.dumps(rows[-1])[:400], flush=True)
        save({"clustering": rows})
    return rows


# --- the run, the JSON and the table --------------------------------------------------------

def run(args: argparse.Namespace, device: torch.device,
        save: Callable[[dict], None] = lambda report: None) -> dict[str, Any]:
    """Every part of ``--parts`` in order; ``save(report)`` after each (a killed run keeps the
    parts it finished)."""
    start = time.perf_counter()
    report: dict[str, Any] = {"environment": environment(device, args), "train": [],
                              "pil": None, "losses": [], "embedding": None, "clustering": []}
    if "train" in args.parts:
        images = torch.randint(0, 256, (args.pool, 3, args.size, args.size), dtype=torch.uint8,
                               device=device)
        cells = train_grid(args)
        for cell in sorted(cells, key=lambda c: c["compile"] == "on"):  # compiled cells last
            if time.perf_counter() - start > args.budget_s * args.train_share:
                report["train"].append({**cell, "skipped": "time budget spent"})
                continue
            report["train"] += train_cell(cell, images, args)
        save(report)
    parts = [("pil", lambda: pil_cell(args, device)),
             ("losses", lambda: loss_cells(args, device, start)),
             ("embedding", lambda: embedding_cell(args, device)),
             ("clustering", lambda: cluster_cells(args, device, start,
                                                  lambda part: save({**report, **part})))]
    for key, part in parts:
        if key not in args.parts:
            continue
        if key == "clustering" and args.cluster_skipped:
            report[key] = {"skipped": args.cluster_skipped}
            continue
        if time.perf_counter() - start > args.budget_s:
            report[key] = {"skipped": "time budget spent"}
            continue
        try:
            report[key] = part()
        except Exception as error:
            report[key] = {"error": f"{type(error).__name__}: {error}"[:300]}
        print(json.dumps({key: report[key]})[:400], flush=True)
        save(report)
    report["elapsed_s"] = time.perf_counter() - start
    return report


def environment(device: torch.device, args: argparse.Namespace) -> dict[str, Any]:
    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"CPU {platform.processor() or platform.machine()}")
    import scipy
    import sklearn

    return {"torch": torch.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "sklearn": sklearn.__version__, "device": str(device), "device_name": name,
            "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
            "load": os.getloadavg()[0], "parts": list(args.parts), "smoke": args.smoke,
            "steps": args.steps, "warmup": args.warmup, "budget_s": args.budget_s}


def _train_table(rows: list[dict]) -> list[str]:
    lines = ["| encoder | batch | precision | layout | compile | I-Con img/s | RKDO img/s | "
             "RKDO / I-Con step | data share (RKDO) |",
             "|---|---:|---|---|---|---:|---:|---:|---:|"]
    keys = ("encoder", "batch", "precision", "layout", "compile")
    cells: dict[tuple, dict[str, dict]] = {}
    for row in rows:
        cells.setdefault(tuple(row[k] for k in keys), {})[row.get("method", "-")] = row
    for key, methods in cells.items():
        icon, rkdo = methods.get("icon", {}), methods.get("rkdo", {})
        if "step_ms" in icon and "step_ms" in rkdo:
            numbers = (f"{icon['images_per_s']:.0f} | {rkdo['images_per_s']:.0f} | "
                       f"{rkdo['step_ms'] / icon['step_ms']:.2f} | {rkdo['data_share']:.1%}")
        else:
            why = next((m.get("error") or m.get("skipped") for m in methods.values()), "-")
            numbers = f"{str(why)[:60]} | - | - | -"
        lines.append("| " + " | ".join(str(k) for k in key) + f" | {numbers} |")
    return lines


def _loss_table(rows: list[dict]) -> list[str]:
    batches = sorted({row["batch"] for row in rows})
    lines = ["| loss | " + " | ".join(f"B={b}" for b in batches) + " |",
             "|---|" + "---:|" * len(batches)]
    for name in dict.fromkeys(row["loss"] for row in rows):
        found = {row["batch"]: row for row in rows if row["loss"] == name}
        cells = []
        for batch in batches:
            row = found.get(batch)
            cells.append("-" if row is None else "OOM" if row.get("oom") else "skipped"
                         if "skipped" in row else f"{row['ms']:.3g} ms" + (
                             "" if row["peak_mib"] is None else f", {row['peak_mib']:.0f} MiB"))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _headline(report: dict[str, Any]) -> list[str]:
    """Best RKDO images/s, its steps/s against the PIL reference, bf16 over fp32, and the
    largest batch each loss fits."""
    rkdo = [r for r in report["train"] if r.get("method") == "rkdo" and "step_ms" in r]
    lines = []
    pil = report["pil"] or {}
    if rkdo:
        best = max(rkdo, key=lambda r: r["images_per_s"])
        lines.append(f"- fastest RKDO step: {best['images_per_s']:.0f} images/s "
                     f"({best['encoder']}, batch {best['batch']}, {best['precision']}, "
                     f"{best['layout']}, compile {best['compile']}; data share "
                     f"{best['data_share']:.1%})")
        same = [r for r in rkdo if r["encoder"] == pil.get("encoder")
                and r["batch"] == pil.get("batch")]
        if same and "rkdo" in pil:
            steps = max(1e3 / r["step_ms"] for r in same)
            lines.append(f"- at the reference's setting ({pil['encoder']}, batch {pil['batch']}):"
                         f" {steps:.1f} steps/s vs {pil['rkdo']['steps_per_s']:.2f} with the PIL "
                         f"pipeline ({steps / pil['rkdo']['steps_per_s']:.0f}x; goal >= 20x)")
    for encoder in dict.fromkeys(r["encoder"] for r in rkdo):
        pairs = {(r["batch"], r["layout"], r["precision"]): r["step_ms"] for r in rkdo
                 if r["encoder"] == encoder and r["compile"] == "off"}
        gains = [pairs[b, lay, "fp32"] / pairs[b, lay, "bf16"] for (b, lay, p) in pairs
                 if p == "bf16" and (b, lay, "fp32") in pairs]
        if gains:
            lines.append(f"- {encoder}: bf16 speed-up over fp32 (eager, RKDO) "
                         f"{min(gains):.2f}-{max(gains):.2f}x (goal >= 1.5x on ResNet-18)")
    losses = report["losses"] if isinstance(report["losses"], list) else []
    for name in dict.fromkeys(r["loss"] for r in losses):
        fits = [r["batch"] for r in losses if r["loss"] == name and "ms" in r]
        stop = next((r for r in losses if r["loss"] == name and "ms" not in r), None)
        why = "" if stop is None else (" (OOM above)" if stop.get("oom") else " (then skipped)")
        lines.append(f"- {name}: largest batch run {max(fits, default=0)}{why}")
    return lines


def markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    lines = [f"# GPU throughput ({env['device_name']}, torch {env['torch']}"
             f"{', SMOKE' if env['smoke'] else ''})", "",
             f"{report['elapsed_s']:.0f} s in all; {env['steps']} timed steps per cell after "
             f"{env['warmup']} untimed.", "", "## Headline", ""]
    lines += _headline(report)
    lines += ["", "## Training steps", ""]
    lines += _train_table(report["train"])
    lines += ["", "## The reference's per-image PIL pipeline", ""]
    pil = report["pil"] or {}
    if "icon" in pil:
        lines.append(f"{pil['pipeline']}, {pil['encoder']}, batch {pil['batch']}, fp32: "
                     + ", ".join(f"{m} {pil[m]['steps_per_s']:.2f} steps/s (data share "
                                 f"{pil[m]['data_share']:.0%})" for m in METHODS))
    else:
        lines.append(str(pil))
    lines += ["", "## Losses: forward + backward, d = 64 (time, peak memory)", ""]
    losses = report["losses"]
    lines += _loss_table(losses) if isinstance(losses, list) and losses else [str(losses)]
    lines += ["", "## NeighbourEmbedding", "", str(report["embedding"]), ""]
    lines += ["## KernelClustering (defaults, seed 0)", ""]
    clustering = report["clustering"]
    lines += (_cluster_table(clustering) if isinstance(clustering, list) and clustering
              else [str(clustering)])
    return "\n".join(lines) + "\n"


def _cluster_table(rows: list[dict]) -> list[str]:
    lines = ["| data | points | device | fit s | peak device MiB | peak RSS GiB | NMI | ARI | "
             "epochs | load | stages (s) |", "|---|---:|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for row in rows:
        if "fit_s" not in row:
            why = row.get("error") or row.get("skipped")
            lines.append(f"| {row['data']} | {row['points']:,} | {str(why)[:80]} |"
                         + " - |" * 8)
            continue
        peak = "-" if row["peak_device_mib"] is None else f"{row['peak_device_mib']:.0f}"
        stages = "; ".join(f"{'↳ ' * s['depth']}{s['stage']} {s['seconds']:.1f}"
                           for s in row["stages"])
        first = row.get("nmi_originals")
        nmi = f"{row['nmi']:.3f}" + ("" if first is None else f" (first 70k {first:.3f})")
        lines.append(f"| {row['data']} | {row['points']:,} | {row['device']} | {row['fit_s']:.1f} "
                     f"| {peak} | {row['peak_rss_gib']:.2f} | {nmi} | {row['ari']:.3f} "
                     f"| {row['n_iter']} | {row['load'][0]:.1f}-{row['load'][1]:.1f} | {stages} |")
    return lines


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--table", type=Path, default=None,
                        help="markdown table to write (default: --out with .md)")
    parser.add_argument("--smoke", action="store_true",
                        help="toy sizes, no compile: proves every part on a CPU in seconds")
    parser.add_argument("--encoders", nargs="+", default=["resnet18-cifar", "small-cnn"])
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"),
                        default=["fp32", "bf16"])
    parser.add_argument("--layouts", nargs="+", choices=("contiguous", "channels_last"),
                        default=["contiguous", "channels_last"])
    parser.add_argument("--compile", nargs="+", choices=("off", "on"), default=["off", "on"])
    parser.add_argument("--compile-batches", type=int, nargs="+", default=[512],
                        help="batches whose cells are also run compiled (default 512)")
    parser.add_argument("--compile-layouts", nargs="+", choices=("contiguous", "channels_last"),
                        default=["channels_last"],
                        help="layouts whose cells are also run compiled (default channels_last)")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per cell")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per cell")
    parser.add_argument("--pool", type=int, default=8192, help="random RGB images held")
    parser.add_argument("--pil-encoder", default="resnet18-cifar")
    parser.add_argument("--pil-batch", type=int, default=256)
    parser.add_argument("--pil-steps", type=int, default=5)
    parser.add_argument("--loss-batches", type=int, nargs="+",
                        default=[512 * 2 ** k for k in range(8)])
    parser.add_argument("--loss-steps", type=int, default=3)
    parser.add_argument("--embed-points", type=int, default=70_000)
    parser.add_argument("--embed-iter", type=int, default=750)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=None,
                        help="parts to run, in the module docstring's order (default: all; "
                             "then a missing Fashion-MNIST skips the clustering part instead "
                             "of stopping the run)")
    parser.add_argument("--cluster-points", type=int, nargs="+", default=[70_000],
                        help="points of each KernelClustering cell: up to 70,000 a seeded "
                             "subset of Fashion-MNIST, above that the 1M construction of "
                             "benchmarks/clustering_scale.py (default: 70000)")
    parser.add_argument("--fashion-root", type=Path, default=None,
                        help="folder with Fashion-MNIST's four IDX files (.gz or raw; default: "
                             f"{FASHION_MNIST_SYSTEM_ROOT}, then rkdo's data folder)")
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="start no part after this many seconds (default 420)")
    parser.add_argument("--train-share", type=float, default=0.55,
                        help="share of the budget the training grid may use (default 0.55)")
    args = parser.parse_args(argv)
    args.parts_asked = args.parts is not None
    args.parts = args.parts or list(PARTS)
    args.cluster_skipped = None
    if args.smoke:
        args.encoders, args.batches, args.compile, args.steps, args.warmup = (
            ["small-cnn"], [8], ["off"], 2, 1)
        args.pool, args.pil_encoder, args.pil_batch, args.pil_steps = 64, "small-cnn", 8, 2
        args.loss_batches, args.loss_steps = [32, 64], 1
        args.embed_points, args.embed_iter = 300, 50
        args.cluster_points = [300]
    if min(args.cluster_points) < 20:
        parser.error(f"--cluster-points must be at least 20 (10 clusters need points), got "
                     f"{min(args.cluster_points)}")
    args.cluster_data = None
    return args


def _preload(args: argparse.Namespace) -> None:
    """Load the clustering part's data before any GPU time is spent; exit with the flag to
    pass if the files are missing."""
    from rkdo.vision.data import DataError

    if "clustering" not in args.parts or args.smoke:
        return
    from rkdo.estimators._knn import APPROXIMATE_ABOVE

    if max(args.cluster_points) > APPROXIMATE_ABOVE and find_spec("pynndescent") is None:
        sys.exit(f"gpu_throughput: --cluster-points above {APPROXIMATE_ABOVE:,} needs "
                 "pynndescent (KernelClustering's k-NN search there); install it or carry its "
                 "wheel (docs/results/gpu.md), or ask for 70000 only")
    try:
        args.cluster_data = cluster_data(args)
    except DataError:
        where = args.fashion_root or f"{FASHION_MNIST_SYSTEM_ROOT} or rkdo's data folder"
        message = (f"the clustering part needs Fashion-MNIST, whose IDX files are not in "
                   f"{where}: {FASHION_HELP}")
        if args.parts_asked:
            sys.exit(f"gpu_throughput: {message}")
        # the default run (every part, as sessions before part 5 ran it) loses only this part
        args.cluster_skipped = message
        print(f"gpu_throughput: skipping: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    _preload(args)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    table = args.table or args.out.with_suffix(".md")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    def save(report: dict[str, Any]) -> None:
        report = {"elapsed_s": time.perf_counter() - started, **report}
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        table.write_text(markdown(report))

    report = run(args, device, save)
    save(report)
    print(f"wrote {args.out} and {table} ({report['elapsed_s']:.0f} s)")


if __name__ == "__main__":
    main()
