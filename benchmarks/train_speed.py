"""Training-step speed: our in-memory batched pipeline against the reference notebooks' pipeline.

One training step = get a batch of two augmented views, ``z1 = model(v1)``,
``z2 = model(v2)`` (two forward passes, unless a variant says otherwise),
``rkdo.RKDOLoss()(z1, z2)``, backward, Adam (lr 1e-3, weight decay 1e-5). Batch 64,
Fashion-MNIST training images (converted to RGB and resized to 32 px, as the reference would
feed them to its CIFAR pipeline, unless a variant says otherwise).

Variants (``--variants``):

- ``reference``: a ``torch.utils.data.DataLoader`` (``num_workers=0``: the loading runs in the
  training process, between steps) over a dataset that returns, per image, two views from
  torchvision's PIL transforms ``Resize(32) -> RGB -> RandomResizedCrop(32, scale=(0.2, 1))
  -> RandomHorizontalFlip -> RandomApply(ColorJitter(.4, .4, .4, .1), p=.8)
  -> RandomGrayscale(.2) -> ToTensor -> Normalize(.5, .5)``; ResNet-18 (ImageNet stem).
- ``reference-w2``: the same with ``num_workers=2`` (the workers share the same cores).
- ``ours``: uint8 images in memory (RGB, 32 px, converted once), a random batch gathered by
  index, :class:`rkdo.vision.augment.TwoViews` on the whole batch; the same ResNet-18.
- ``ours-cl``: ``ours`` with the model and views in ``channels_last``.
- ``ours-cl-cat``: ``ours-cl`` with one forward pass over both views concatenated (2B images;
  BatchNorm then normalises over both views together, as SimCLR's implementation does).
- ``ours-bf16`` (not run by default): ``ours`` with the forward pass under
  ``torch.autocast("cpu", bfloat16)`` (the loss in float32). Very slow on CPUs without native
  bf16 (AVX-512 BF16 / AMX): one step took 120 s on the AVX2-only development machine.
- ``small-cnn``: ``ours-cl-cat`` on 1-channel 28 px images with the ``small-cnn`` encoder.
- ``small-cnn-joint``: the trainer's default step for it (``views_forward="joint"``, no
  channels_last); ``small-cnn-separate``: one forward per view (``views_forward="separate"``);
  ``small-cnn-compile``: ``small-cnn-joint`` under ``torch.compile`` (``compile=True``; its
  compilation happens in the warm-up steps); ``small-cnn-compile-cl``: ``small-cnn`` (joint,
  channels_last) under ``torch.compile``, the recipe's setting.

Data time (waiting for the batch, gathering, augmenting) and compute time (forward, loss,
backward, optimizer) are measured separately with the wall clock; the CPU time of the process
per step is shown too (it excludes time spent waiting for a core). On a machine shared with other
jobs both include waiting for a core, so the variants run interleaved, a few steps each in turn,
to share the same load (``reference-w2`` runs alone after them, since its workers would keep
preparing batches while the other variants run); the table reports medians per step.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/train_speed.py --threads 2 --steps 20

``OMP_WAIT_POLICY`` is set to ``PASSIVE`` unless already set (spinning OpenMP workers distort
timings on shared cores, MISSION.md). glibc's allocator returns freed memory to the system and
page-faults it back, which costs CPU pipelines a lot on some virtual machines; the table header
prints ``MALLOC_TRIM_THRESHOLD_`` / ``MALLOC_MMAP_THRESHOLD_`` so runs with them set can be told
apart.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from rkdo import RKDOLoss  # noqa: E402
from rkdo.vision.augment import TwoViews  # noqa: E402
from rkdo.vision.data import load, resize_uint8  # noqa: E402
from rkdo.vision.models import build_model  # noqa: E402

SMALL = ("small-cnn", "small-cnn-joint", "small-cnn-separate", "small-cnn-compile",
         "small-cnn-compile-cl")
VARIANTS = ("reference", "reference-w2", "ours", "ours-cl", "ours-cl-cat", "ours-bf16", *SMALL)
DEFAULT_VARIANTS = ("reference", "reference-w2", "ours", "ours-cl", "ours-cl-cat", "small-cnn")
OURS = ("ours", "ours-cl", "ours-cl-cat", "ours-bf16", *SMALL)
# (faster, slower, goal): the trainer's options against their alternatives
PAIRS = (("ours-cl-cat", "ours-cl", "joint forward > 1x two forwards"),
         ("small-cnn-joint", "small-cnn-separate", "joint forward > 1x two forwards"),
         ("small-cnn-compile", "small-cnn-joint", "compile > 1x eager"),
         ("small-cnn-compile-cl", "small-cnn", "compile > 1x eager (channels_last)"))


@dataclass
class Clock:
    """Per-step data and compute times (seconds) on one clock."""

    data: list[float] = field(default_factory=list)
    compute: list[float] = field(default_factory=list)

    def add(self, data: float, compute: float) -> None:
        self.data.append(data)
        self.compute.append(compute)

    def median_data(self) -> float:
        return statistics.median(self.data)

    def median_compute(self) -> float:
        return statistics.median(self.compute)

    def median_step(self) -> float:
        return statistics.median(d + c for d, c in zip(self.data, self.compute, strict=True))

    def median_data_share(self) -> float:
        return statistics.median(d / (d + c) for d, c in zip(self.data, self.compute, strict=True))


@dataclass
class Timings:
    wall: Clock = field(default_factory=Clock)
    cpu: Clock = field(default_factory=Clock)

    @property
    def steps(self) -> int:
        return len(self.wall.data)


class Step:
    """One training set-up: a model, its optimizer and a way to get two views of a batch."""

    def __init__(
        self,
        encoder: str,
        channels: int,
        size: int,
        seed: int,
        channels_last: bool = False,
        bf16: bool = False,
        concat: bool = False,
        compile: bool = False,
    ) -> None:
        torch.manual_seed(seed)
        self.model = build_model(encoder, channels, size)
        self.forward = torch.compile(self.model) if compile else self.model
        self.channels_last = channels_last
        self.bf16 = bf16
        self.concat = concat
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.loss = RKDOLoss()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3, weight_decay=1e-5)

    def batch(self) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def run(self, timings: Timings) -> None:
        """One training step; its data and compute times (wall and CPU) go into ``timings``."""
        cpu_start = time.process_time()
        start = time.perf_counter()
        views = self.batch()
        if self.concat:
            views = (torch.cat(views),)
        if self.channels_last:
            views = tuple(v.contiguous(memory_format=torch.channels_last) for v in views)
        middle, cpu_middle = time.perf_counter(), time.process_time()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            if self.concat:
                z1, z2 = self.forward(views[0]).chunk(2)
            else:
                z1, z2 = self.forward(views[0]), self.forward(views[1])
        loss = self.loss(z1.float(), z2.float())
        loss.backward()
        self.optimizer.step()
        end, cpu_end = time.perf_counter(), time.process_time()
        timings.wall.add(middle - start, end - middle)
        timings.cpu.add(cpu_middle - cpu_start, cpu_end - cpu_middle)

    def close(self) -> None:
        """Release background resources (DataLoader workers)."""


class OursStep(Step):
    """uint8 images in memory, a gathered random batch, batched two-view augmentation."""

    def __init__(self, images: Tensor, batch: int, seed: int, encoder: str, **kwargs) -> None:
        super().__init__(encoder, images.shape[1], images.shape[-1], seed, **kwargs)
        self.images = images
        self.batch_size = batch
        self.generator = torch.Generator().manual_seed(seed)
        self.augment = TwoViews(images.shape[-1], images.shape[1])

    def batch(self) -> tuple[Tensor, Tensor]:
        index = torch.randint(len(self.images), (self.batch_size,), generator=self.generator)
        return self.augment(self.images[index], self.generator)


def _to_rgb(image):
    return image.convert("RGB")


class ReferenceDataset(torch.utils.data.Dataset):
    """Per-image PIL transforms, as the reference notebooks' torchvision datasets apply them."""

    def __init__(self, images: Tensor) -> None:
        from torchvision import transforms as T

        self.images = images.numpy()  # (N, 28, 28) uint8, as torchvision's FashionMNIST holds it
        self.transform = T.Compose(
            [
                T.Resize(32),
                T.Lambda(_to_rgb),
                T.RandomResizedCrop(32, scale=(0.2, 1.0)),
                T.RandomHorizontalFlip(),
                T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
                T.RandomGrayscale(p=0.2),
                T.ToTensor(),
                T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
            ]
        )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        from PIL import Image

        image = Image.fromarray(self.images[index], mode="L")
        return self.transform(image), self.transform(image)


class ReferenceStep(Step):
    def __init__(self, images: Tensor, batch: int, seed: int, workers: int, **kwargs) -> None:
        super().__init__("resnet18", 3, 32, seed, **kwargs)
        self.loader = torch.utils.data.DataLoader(
            ReferenceDataset(images[:, 0]),
            batch_size=batch,
            shuffle=True,
            num_workers=workers,
            drop_last=True,
            generator=torch.Generator().manual_seed(seed),
        )
        self.iterator: Iterator | None = None

    def batch(self) -> tuple[Tensor, Tensor]:
        if self.iterator is None:
            self.iterator = iter(self.loader)
        try:
            return next(self.iterator)
        except StopIteration:
            self.iterator = iter(self.loader)
            return next(self.iterator)

    def close(self) -> None:
        self.iterator = None  # shuts the workers down


def build(name: str, gray28: Tensor, rgb32: Tensor, batch: int, seed: int) -> Step:
    flags = {
        "channels_last": name in ("ours-cl", "ours-cl-cat", "small-cnn", "small-cnn-compile-cl"),
        "concat": name in ("ours-cl-cat", "small-cnn", "small-cnn-joint", "small-cnn-compile",
                           "small-cnn-compile-cl"),
        "bf16": name == "ours-bf16",
        "compile": name in ("small-cnn-compile", "small-cnn-compile-cl"),
    }
    if name in ("reference", "reference-w2"):
        return ReferenceStep(
            gray28, batch, seed, workers=2 if name == "reference-w2" else 0, **flags
        )
    if name in SMALL:
        return OursStep(gray28, batch, seed, "small-cnn", **flags)
    return OursStep(rgb32, batch, seed, "resnet18", **flags)


def measure(steps: dict[str, Step], n_steps: int, warmup: int, chunk: int) -> dict[str, Timings]:
    for step in steps.values():
        for _ in range(warmup):
            step.run(Timings())
    timings = {name: Timings() for name in steps}
    while any(t.steps < n_steps for t in timings.values()):
        for name, step in steps.items():
            for _ in range(min(chunk, n_steps - timings[name].steps)):
                step.run(timings[name])
    return timings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=VARIANTS)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=5, help="steps per turn when interleaving")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", default=None, help="folder with the Fashion-MNIST files")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    train = load("fashion-mnist", root=args.data_root).train.images  # (N, 1, 28, 28) uint8
    rgb32 = resize_uint8(train.expand(-1, 3, -1, -1), 32)  # once, as the reference would per image

    interleaved = [v for v in args.variants if v != "reference-w2"]
    steps = {name: build(name, train, rgb32, args.batch, args.seed) for name in interleaved}
    timings = measure(steps, args.steps, args.warmup, args.chunk)
    for step in steps.values():
        step.close()
    if "reference-w2" in args.variants:
        alone = build("reference-w2", train, rgb32, args.batch, args.seed)
        timings["reference-w2"] = measure(
            {"reference-w2": alone}, args.steps, args.warmup, args.steps
        )["reference-w2"]
        alone.close()

    env = {
        k: os.environ.get(k, "-")
        for k in ("OMP_WAIT_POLICY", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")
    }
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs (shared), torch threads {torch.get_num_threads()}, "
        + ", ".join(f"{k}={v}" for k, v in env.items())
    )
    print(
        f"batch {args.batch}, {args.steps} timed steps per variant after {args.warmup} warm-up "
        f"steps, medians per step (wall clock)\n"
    )
    base = timings.get("reference")
    print(
        "| variant | data ms | compute ms | step ms | data % | steps/s | images/s | vs reference "
        "| CPU data ms | CPU step ms | CPU data % | vs reference (CPU) |"
    )
    print("|" + "---|" * 12)
    for name in args.variants:
        wall, cpu = timings[name].wall, timings[name].cpu
        step = wall.median_step()
        ratio = ratio_cpu = "-"
        if base is not None:
            ratio = f"{base.wall.median_step() / step:.2f}x"
            ratio_cpu = f"{base.cpu.median_step() / cpu.median_step():.2f}x"
        print(
            f"| {name} | {wall.median_data() * 1e3:.1f} | {wall.median_compute() * 1e3:.1f} "
            f"| {step * 1e3:.1f} | {100 * wall.median_data_share():.1f} | {1 / step:.2f} "
            f"| {args.batch / step:.0f} | {ratio} | {cpu.median_data() * 1e3:.1f} "
            f"| {cpu.median_step() * 1e3:.0f} | {100 * cpu.median_data_share():.1f} "
            f"| {ratio_cpu} |"
        )
    print(
        "\nCPU columns: CPU time of the training process (all its threads), which leaves out "
        "time spent waiting for a core; for reference-w2 it also leaves out the two workers."
    )
    print_goals(timings)


def print_goals(timings: dict[str, Timings]) -> None:
    """The issue's targets against the in-process reference, on the wall clock (CPU clock)."""
    base = timings.get("reference")
    lines = []
    for name in OURS:
        if name in timings:
            t = timings[name]
            lines.append(
                f"{name}: data {100 * t.wall.median_data_share():.1f}% "
                f"({100 * t.cpu.median_data_share():.1f}%) of the step (goal < 5%: "
                f"{'met' if t.wall.median_data_share() < 0.05 else 'not met'})"
            )
    if base is not None:
        for name in OURS:
            if name in timings:
                t = timings[name]
                wall = base.wall.median_step() / t.wall.median_step()
                cpu = base.cpu.median_step() / t.cpu.median_step()
                goal = (
                    "images/s (goal >= 10x)" if name in SMALL else "steps/s (goal >= 1.15x)"
                )
                lines.append(f"{name}: {wall:.2f}x ({cpu:.2f}x) the reference's {goal}")
    for faster, slower, goal in PAIRS:
        if faster in timings and slower in timings:
            fast, slow = timings[faster], timings[slower]
            wall = slow.wall.median_step() / fast.wall.median_step()
            cpu = slow.cpu.median_step() / fast.cpu.median_step()
            met = "met" if wall > 1.0 else "not met"
            lines.append(f"{faster} vs {slower}: {wall:.2f}x ({cpu:.2f}x) ({goal}: {met})")
    if lines:
        print("\nGoals, wall clock (CPU clock):\n- " + "\n- ".join(lines))


if __name__ == "__main__":
    main()
