"""Compute per training step: FLOPs (forward, forward+backward) and median wall time.

One step is the trainer's: two views of a batch of ``B`` images through the encoder, the loss,
then (for forward+backward) ``loss.backward()``:

    forward FLOPs        F_fwd = F(f(v1)) + F(f(v2)) + F(loss(z1, z2))
    training FLOPs       F_train = F_fwd + F(backward)            (~ 3 F_fwd for matmul/conv)

FLOPs are counted by :class:`torch.utils.flop_counter.FlopCounterMode`, which counts matrix
products and convolutions (``mm``, ``addmm``, ``bmm``, ``convolution`` and their backward
formulas; a multiply-add is 2 FLOPs) and nothing else: element-wise ops, softmax, normalisation
and the optimiser update are not counted. For ``y = x W^T + b`` with ``x`` of shape (B, i) and
``W`` of shape (o, i) that is ``2 B i o`` forward and ``2 B i o`` for each of the input and
weight gradients. Our RKDO loss computes the similarities ``z1 z2^T`` once for all ``K + 1``
temperatures, so its recursion adds only element-wise work (softmaxes and mixtures over B x B
matrices), which this counter does not see: the wall time shows that cost. (A loss that
recomputed ``z1 z2^T`` per temperature would add ``2 B^2 D`` FLOPs each; the paper's 0.0008
GFLOPs difference between depth 3 and depth 1 is of that size.)

Wall time is the median over timed steps (after warm-up) of a full step including the optimiser
update, on random inputs: it measures the model and the loss, not data loading or augmentation.
The fastest and slowest timed steps and the machine's 1-minute load average come with it: on a
shared machine a time ratio means something only where the two variants' [min, max] ranges do
not overlap (:func:`time_verdict`).
The paper reports 9.5537 (depth 1) and 9.5545 (depth 3) GFLOPs per step, forward only, for
ResNet-18 at batch 64 and 32 px.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from rkdo import methods
from rkdo.training import LossCall, TrainConfig, build_loss
from rkdo.vision.models import build_model

__all__ = [
    "PAPER_GFLOPS",
    "DEFAULT_VARIANTS",
    "StepProfile",
    "count_flops",
    "profile_step",
    "profile",
    "format_table",
    "time_verdict",
]

PAPER_GFLOPS: dict[str, float] = {"rkdo depth 1": 9.5537, "rkdo depth 3": 9.5545}
"""The paper's forward GFLOPs per step (ResNet-18, batch 64, 32 px, CIFAR-10)."""

DEFAULT_VARIANTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("rkdo depth 1", {"method": "rkdo", "depth": 1}),
    ("rkdo depth 3", {"method": "rkdo", "depth": 3}),
    ("icon", {"method": "icon"}),
)
"""``(label, TrainConfig overrides)`` profiled by default: RKDO at depth 1 and 3, and I-Con."""


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs that :class:`~torch.utils.flop_counter.FlopCounterMode` counts while ``fn()`` runs."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


@dataclass
class StepProfile:
    """One variant's cost per training step."""

    label: str
    method: str
    depth: int | None
    batch_size: int
    image_size: int
    encoder: str
    forward_flops: int
    train_flops: int
    loss_forward_flops: int
    median_step_seconds: float
    timed_steps: int
    device: str
    threads: int
    min_step_seconds: float = math.nan
    max_step_seconds: float = math.nan
    load_average: float | None = None
    """The machine's 1-minute load average when the timing ended (None: not recorded)."""

    @property
    def forward_gflops(self) -> float:
        return self.forward_flops / 1e9

    @property
    def train_gflops(self) -> float:
        return self.train_flops / 1e9

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def profile_step(
    model: nn.Module,
    objective: LossCall,
    views: tuple[Tensor, Tensor],
    labels: Tensor,
    *,
    steps: int = 10,
    warmup: int = 3,
    lr: float = 1e-3,
) -> tuple[int, int, int, list[float]]:
    """``(forward FLOPs, forward+backward FLOPs, loss-only forward FLOPs, step seconds)``.

    ``model`` is trained in place for ``warmup + steps`` Adam steps while timing (pass a fresh
    copy if its weights matter); the seconds of each timed step are returned (none when
    ``steps = 0``). The loss is called
    as the trainer calls it (``objective``), the batch being samples ``0 .. B-1`` at step 0.
    """
    if steps < 0 or warmup < 0:
        raise ValueError(f"steps and warmup must be >= 0, got {steps} and {warmup}")
    view1, view2 = views
    index = torch.arange(len(view1), device=view1.device)
    model.train()

    def call(z1: Tensor, z2: Tensor) -> Tensor:
        return objective(z1, z2, labels=labels, view1=view1, index=index)

    def forward() -> Tensor:
        return call(model(view1), model(view2))

    def forward_backward() -> None:
        model.zero_grad(set_to_none=True)
        forward().backward()

    with torch.no_grad():
        z1, z2 = model(view1), model(view2)
    forward_flops = count_flops(forward)
    train_flops = count_flops(forward_backward)
    loss_flops = count_flops(lambda: call(z1, z2))

    seconds: list[float] = []
    if steps:
        parameters = list(model.parameters()) + list(objective.loss.parameters())
        optimizer = torch.optim.Adam(parameters, lr=lr)
        synchronize = (torch.cuda.synchronize if view1.is_cuda else lambda: None)
        for step in range(warmup + steps):
            synchronize()
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            forward().backward()
            optimizer.step()
            synchronize()
            if step >= warmup:
                seconds.append(time.perf_counter() - start)
    return forward_flops, train_flops, loss_flops, seconds


def _check_profile(*, variants: Sequence[tuple[str, dict[str, Any]]], **sizes: int) -> None:
    """Refuse sizes below 1, an empty variant list and unknown methods, before any work."""
    for name, value in sizes.items():
        if int(value) < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if not variants:
        raise ValueError("variants must name at least one (label, overrides) pair")
    for label, overrides in variants:
        method = overrides.get("method", TrainConfig.method)
        if method not in methods.METHODS:
            raise ValueError(f"unknown method {method!r} (variant {label!r}); known: "
                             f"{', '.join(sorted(methods.METHODS))}")


def profile(
    encoder: str = "resnet18",
    batch_size: int = 64,
    image_size: int = 32,
    channels: int = 3,
    *,
    variants: Sequence[tuple[str, dict[str, Any]]] = DEFAULT_VARIANTS,
    embedding_dim: int = 64,
    hidden_dim: int = 512,
    steps: int = 10,
    warmup: int = 3,
    device: str = "cpu",
    seed: int = 0,
) -> list[StepProfile]:
    """Profile one training step of each variant for an encoder / batch / image size.

    Every variant gets the same freshly initialised encoder (``seed``) and the same random
    views, so the differences are the losses'. Variants are ``(label, overrides)`` with
    overrides of :class:`rkdo.training.TrainConfig` (``method``, ``depth``, ``alpha``, ...).
    """
    _check_profile(batch_size=batch_size, image_size=image_size, channels=channels,
                   variants=variants)
    torch_device = torch.device(device)
    generator = torch.Generator().manual_seed(seed)
    views = tuple(
        (torch.rand(batch_size, channels, image_size, image_size, generator=generator) * 2 - 1)
        .to(torch_device)
        for _ in range(2)
    )
    labels = torch.randint(0, 10, (batch_size,), generator=generator).to(torch_device)
    results = []
    for label, overrides in variants:
        config = TrainConfig(encoder=encoder, batch_size=batch_size, image_size=image_size,
                             embedding_dim=embedding_dim, hidden_dim=hidden_dim, **overrides)
        torch.manual_seed(seed)
        model = build_model(encoder, channels, image_size, embedding_dim=embedding_dim,
                            hidden_dim=hidden_dim).to(torch_device)
        loss_fn = build_loss(config, n_samples=batch_size).to(torch_device)
        forward, train, loss_only, seconds = profile_step(
            model, LossCall.for_config(loss_fn, config), views, labels, steps=steps,
            warmup=warmup, lr=config.lr,
        )
        recursive = config.resolved_recursion() != "none"
        results.append(StepProfile(
            label=label, method=config.method, depth=config.depth if recursive else None,
            batch_size=batch_size, image_size=image_size, encoder=encoder,
            forward_flops=forward, train_flops=train, loss_forward_flops=loss_only,
            median_step_seconds=statistics.median(seconds) if seconds else math.nan,
            timed_steps=steps, device=str(torch_device), threads=torch.get_num_threads(),
            min_step_seconds=min(seconds, default=math.nan),
            max_step_seconds=max(seconds, default=math.nan), load_average=_load_average(),
        ))
    return results


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def time_verdict(profile: StepProfile, reference: StepProfile) -> str:
    """``profile``'s median step time relative to ``reference``'s, in words with its spread.

    ``"+12.3%"`` where the two ranges of timed steps do not overlap; ``"+2.1% (within the
    spread)"`` where they do; ``"--"`` where either was not timed.
    """
    if not (reference.median_step_seconds > 0 and profile.median_step_seconds > 0):
        return "--"
    change = f"{(profile.median_step_seconds / reference.median_step_seconds - 1) * 100:+.1f}%"
    if profile is reference:
        return change
    ranges = [(p.min_step_seconds, p.max_step_seconds) for p in (profile, reference)]
    if any(math.isnan(low) or math.isnan(high) for low, high in ranges):
        return change + " (no spread recorded)"
    (low, high), (ref_low, ref_high) = ranges
    if low <= ref_high and ref_low <= high:
        return change + " (within the spread)"
    return change


def _milliseconds(p: StepProfile) -> str:
    if not p.median_step_seconds == p.median_step_seconds:
        return "--"
    if math.isnan(p.min_step_seconds):
        return f"{p.median_step_seconds * 1e3:.1f}"
    return (f"{p.median_step_seconds * 1e3:.1f} [{p.min_step_seconds * 1e3:.1f}, "
            f"{p.max_step_seconds * 1e3:.1f}]")


def format_table(profiles: Sequence[StepProfile], markdown: bool = False) -> str:
    """A table of the profiles, with ratios to the first row and to the paper's GFLOPs.

    Times are the median [min, max] over the timed steps, with the load average when timed."""
    if not profiles:
        return ""
    first = profiles[0]
    header = ["variant", "fwd GFLOPs", "fwd+bwd GFLOPs", "loss fwd MFLOPs",
              "fwd vs first", "ms/step median [min, max]", "time vs first", "load (1 min)",
              "paper fwd GFLOPs", "ours / paper"]
    rows = []
    for p in profiles:
        # the paper's numbers are for one setting only; elsewhere a ratio would mean nothing
        paper_setting = (p.encoder, p.batch_size, p.image_size) == ("resnet18", 64, 32)
        paper = PAPER_GFLOPS.get(p.label) if paper_setting else None
        rows.append([
            p.label,
            f"{p.forward_gflops:.4f}",
            f"{p.train_gflops:.4f}",
            f"{p.loss_forward_flops / 1e6:.3f}",
            f"{(p.forward_flops / first.forward_flops - 1) * 100:+.4f}%",
            _milliseconds(p),
            time_verdict(p, first),
            "--" if p.load_average is None else f"{p.load_average:.2f}",
            f"{paper:.4f}" if paper is not None else "--",
            f"{p.forward_gflops / paper:.4f}" if paper is not None else "--",
        ])
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[k]) for r in rows)) for k, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)
