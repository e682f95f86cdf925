"""Gradient-correct all-gather for global negatives under ``torch.distributed``.

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

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["is_distributed", "world_size", "rank", "gather", "gather_no_grad"]


def is_distributed() -> bool:
    """True when ``torch.distributed`` is available, initialised and has more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of ranks (1 without an initialised process group)."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """This process's rank (0 without an initialised process group)."""
    return dist.get_rank() if is_distributed() else 0


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
