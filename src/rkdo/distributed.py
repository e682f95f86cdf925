"""Where a process runs: its rank, the world, its device; and the gradient-correct all-gather
for global negatives under ``torch.distributed``.

A device name is ``auto`` (the current CUDA device if there is one, else the CPU), ``cpu``,
``cuda`` or ``cuda:N``; :func:`resolve_device` is the one place that turns a name into a
device, refusing devices this machine lacks.

Each rank holds a local batch ``z_r``. The loss on rank ``r`` compares its anchors with the
candidates of *all* ranks, ``Z = [z_0, ..., z_{W-1}]``. The backward of the gather must send every
rank the sum of the gradients that all ranks computed for its slice:

    dL/dz_r = sum_{r'} dL_{r'}/dZ[r]

(an all-reduce of the gathered gradient, then the own slice). With that, data-parallel training
that averages parameter gradients over ranks gives exactly the gradient of the single-process loss
on the concatenated global batch. A gather whose backward returns only the local slice (what
``dist.all_gather`` does, since it has no backward at all) silently drops the cross-rank terms.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["is_distributed", "world_size", "rank", "resolve_device", "join_process_group",
           "check_same_on_every_rank", "gather", "gather_no_grad"]


def is_distributed() -> bool:
    """True when ``torch.distributed`` is available, initialised and has more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of ranks (1 without an initialised process group)."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """This process's rank (0 without an initialised process group)."""
    return dist.get_rank() if is_distributed() else 0


def resolve_device(name: str) -> torch.device:
    """The device ``name`` stands for on this machine: ``auto`` is the current CUDA device if
    there is one, else the CPU; a name this machine lacks is refused in one line."""
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda", torch.cuda.current_device())
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; choose auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(
                f"device {name!r} requested but no CUDA device is available; use --device cpu")
        if device.index is not None and device.index >= count:
            raise ValueError(f"device {name!r} requested but this machine has {count} CUDA "
                             f"device(s): cuda:0 to cuda:{count - 1}")
    return device


def join_process_group(device: str) -> bool:
    """Join the process group ``torchrun`` describes in the environment (``WORLD_SIZE``,
    ``LOCAL_RANK``), once: nccl on this rank's GPU unless ``device`` is ``cpu``, else gloo.
    True if this call created the group (the caller destroys it)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return False
    use_cuda = torch.cuda.is_available() and device != "cpu"
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return True


def check_same_on_every_rank(settings: dict[str, Any]) -> None:
    """Refuse ranks started with different ``settings`` (they would train different runs, hang
    at a collective or abort in it), naming the keys that differ; nothing on one process."""
    if not is_distributed():
        return
    everyone: list[Any] = [None] * world_size()
    dist.all_gather_object(everyone, settings)
    differ = [key for key in settings if any(other.get(key) != everyone[0].get(key)
                                             for other in everyone)]
    if differ:
        detail = "; ".join(
            f"{key}: " + ", ".join(f"rank {index} {other.get(key)!r}"
                                   for index, other in enumerate(everyone))
            for key in differ[:4])
        raise ValueError(f"the ranks were started with different settings ({detail}); start "
                         "every rank with the same flags")


class _GatherWithGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:  # type: ignore[override]
        ctx.rank = dist.get_rank()
        ctx.size = tensor.shape[0]
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = ctx.rank * ctx.size
        return grad[start : start + ctx.size]


def gather(tensor: Tensor) -> Tensor:
    """Concatenate ``tensor`` from all ranks along dim 0, with the gradient-correct backward.

    Every rank must pass a tensor of the same shape. Without distributed set-up this is the
    identity.
    """
    if not is_distributed():
        return tensor
    return _GatherWithGradient.apply(tensor)


@torch.no_grad()
def gather_no_grad(tensor: Tensor) -> Tensor:
    """Concatenate ``tensor`` (labels, ids, raw inputs) from all ranks; no gradient."""
    if not is_distributed():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)
