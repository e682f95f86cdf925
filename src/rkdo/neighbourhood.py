"""Who is compared with whom: the anchors, the candidates and what is known about each sample.

A loss evaluation compares ``B`` anchors with ``N`` candidates. Anchors and candidates are
embeddings; each refers to a *sample* (an image) through ``anchor_index`` / ``candidate_index``,
and sample-level facts (ids, labels, raw inputs, cluster assignments) are stored once per sample.
Supervisory kernels read those facts, learned kernels read the embeddings. Three forms:

- ``pair`` (the reference notebooks'): anchors are view 1, candidates view 2, ``N = B``; the
  positive of anchor ``i`` is candidate ``i``; no same-view negatives, no mask.
- ``symmetric`` (NT-Xent): anchors and candidates are both ``[view1; view2]``, ``N = 2B``,
  self-pairs masked.
- ``single`` (SNE, t-SNE, clustering): one embedding per sample, ``N = B``, self-pairs masked.

Under ``torch.distributed`` the candidates (and sample facts) are gathered from all ranks with a
gradient-correct gather, so negatives are global; anchors stay local.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from rkdo import distributed

__all__ = ["FORMS", "Neighbourhood", "build_neighbourhood", "check_fact", "check_form"]

FORMS = ("pair", "symmetric", "single")


@dataclass
class Neighbourhood:
    """Anchors, candidates and per-sample facts for one loss evaluation.

    Attributes:
        anchors: ``(B, d)`` anchor embeddings.
        candidates: ``(N, d)`` candidate embeddings.
        anchor_index: ``(B,)`` sample index of each anchor.
        candidate_index: ``(N,)`` sample index of each candidate.
        mask: ``(B, N)`` bool, True where ``j`` may be a neighbour of ``i`` (None: all may).
        ids: ``(S,)`` sample ids; equal ids are augmentations of the same image.
        labels: ``(S,)`` class labels or None.
        inputs: ``(S, ...)`` raw inputs (for input-space kernels) or None.
        assignments: ``(S,)`` cluster assignments or None.
    """

    anchors: Tensor
    candidates: Tensor
    anchor_index: Tensor
    candidate_index: Tensor
    mask: Tensor | None
    ids: Tensor
    labels: Tensor | None = None
    inputs: Tensor | None = None
    assignments: Tensor | None = None

    def fact(self, name: str) -> Tensor:
        """The per-sample tensor ``name``, or a ``ValueError`` saying how to pass it."""
        value = getattr(self, name)
        if value is None:
            raise ValueError(
                f"this kernel needs per-sample {name!r}; pass {name}=... to the loss "
                f"(one entry per sample in the batch)"
            )
        return value


def _type_name(value: object) -> str:
    kind = type(value)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def _require_tensor(name: str, value: object, what: str, convert: str) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of {what}, got {_type_name(value)}; convert it with "
            f"{convert}"
        )
    return value


def check_fact(
    name: str, value: Tensor | None, batch: int, device: torch.device, *, integer: bool = True
) -> Tensor | None:
    """``value`` if it is a per-sample tensor of the batch, else ``TypeError`` / ``ValueError``.

    An integer fact (``ids``, ``labels``, ``assignments``) must be a ``(batch,)`` integer tensor:
    a ``(batch, 1)`` one would broadcast to a ``(batch, batch)`` comparison, and float ones are
    refused because NaN (equal to nothing) or 2.5 is no class. Only shape, dtype and device are
    read, never values, so the check costs no device synchronisation.
    """
    if value is None:
        return None
    if integer:
        _require_tensor(name, value, "integers, one per sample", "torch.as_tensor(x).long()")
        if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
            raise TypeError(
                f"{name} must be an integer tensor (e.g. torch.long), got {value.dtype}; "
                f"non-integer {name} are refused (NaN or 2.5 names no class): convert them with "
                f"{name}.long() once they hold whole numbers"
            )
        if value.shape != (batch,):
            raise ValueError(
                f"{name} must have shape ({batch},), one entry per sample, got "
                f"{tuple(value.shape)}; flatten a (B, 1) tensor with {name}.reshape(-1)"
            )
    else:
        _require_tensor(name, value, "per-sample values", "torch.as_tensor(x)")
        if value.dim() == 0 or value.shape[0] != batch:
            raise ValueError(
                f"{name} must have one entry per sample: expected first dimension {batch}, "
                f"got shape {tuple(value.shape)}"
            )
    if value.device != device:
        raise ValueError(
            f"{name} is on {value.device} but the embeddings are on {device}; move it with "
            f"{name}.to(z1.device)"
        )
    return value


def check_form(form: str) -> str:
    """``form`` if it is one of :data:`FORMS`, else ``ValueError``."""
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    return form


def _check_embeddings(name: str, z: object) -> Tensor:
    z = _require_tensor(name, z, "embeddings", "torch.as_tensor(x, dtype=torch.float32)")
    if not z.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor of embeddings, got {z.dtype}; convert it "
            f"with {name}.float()"
        )
    if z.dim() != 2:
        raise ValueError(f"embeddings must be 2-D (batch, dim), got shape {tuple(z.shape)}")
    if z.shape[1] == 0:
        raise ValueError(
            f"embeddings must have at least one feature, got shape {tuple(z.shape)}; check the "
            "model's output dimension"
        )
    return z


def _check_views(z1: Tensor, z2: Tensor | None, form: str) -> int:
    """The batch size, once the views suit the form."""
    _check_embeddings("z1", z1)
    batch = z1.shape[0]
    if batch < 2:
        raise ValueError(
            f"a neighbourhood loss needs a batch of at least 2 samples, got {batch}; "
            "increase the batch size"
        )
    if form == "single":
        if z2 is not None:
            raise ValueError("form='single' takes one view: call loss(z) without z2")
        return batch
    if z2 is None:
        raise ValueError(f"form={form!r} needs two views: call loss(z1, z2)")
    _check_embeddings("z2", z2)
    if z2.shape != z1.shape:
        raise ValueError(
            f"the two views must have the same shape, got {tuple(z1.shape)} and "
            f"{tuple(z2.shape)}"
        )
    if z2.dtype != z1.dtype:
        raise TypeError(
            f"the two views must have the same dtype, got {z1.dtype} and {z2.dtype}; convert "
            "one with z2.to(z1.dtype)"
        )
    if z2.device != z1.device:
        raise ValueError(
            f"the two views must be on the same device, got {z1.device} and {z2.device}; move "
            "one with z2.to(z1.device)"
        )
    return batch


def build_neighbourhood(
    z1: Tensor,
    z2: Tensor | None = None,
    *,
    form: str = "pair",
    ids: Tensor | None = None,
    labels: Tensor | None = None,
    inputs: Tensor | None = None,
    assignments: Tensor | None = None,
    gather_distributed: bool = False,
) -> Neighbourhood:
    """Arrange one or two views of a batch into anchors and candidates (see module docstring)."""
    check_form(form)
    batch = _check_views(z1, z2, form)
    facts = {
        name: check_fact(name, value, batch, z1.device, integer=name != "inputs")
        for name, value in (("ids", ids), ("labels", labels), ("inputs", inputs),
                            ("assignments", assignments))
    }
    world, rank = 1, 0
    gather = lambda t: t  # noqa: E731
    gather_facts = lambda t: t  # noqa: E731
    if gather_distributed and distributed.is_distributed():
        world, rank = distributed.world_size(), distributed.rank()
        gather, gather_facts = distributed.gather, distributed.gather_no_grad
    if facts["ids"] is None:
        facts["ids"] = torch.arange(world * batch, device=z1.device)
    else:
        facts["ids"] = gather_facts(facts["ids"])
    for name in ("labels", "inputs", "assignments"):
        if facts[name] is not None:
            facts[name] = gather_facts(facts[name])
    anchors, candidates, anchor_index, candidate_index, mask = _arrange(
        form, z1, z2, gather, world, rank
    )
    return Neighbourhood(
        anchors=anchors,
        candidates=candidates,
        anchor_index=anchor_index,
        candidate_index=candidate_index,
        mask=mask,
        **facts,
    )


def _arrange(
    form: str, z1: Tensor, z2: Tensor | None, gather: Callable[[Tensor], Tensor], world: int,
    rank: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]:
    """Anchors, candidates, their sample indices and the mask of ``form`` on rank ``rank``."""
    batch, device = z1.shape[0], z1.device
    offset, samples = rank * batch, world * batch
    local = torch.arange(batch, device=device)
    if form == "pair":
        return z1, gather(z2), offset + local, torch.arange(samples, device=device), None
    if form == "symmetric":
        anchors = torch.cat([z1, z2], dim=0)
        # rank r contributes [view1_r; view2_r], i.e. samples r*B..r*B+B-1 twice
        per_rank = torch.cat([local, local])
        candidate_index = (
            torch.arange(world, device=device).repeat_interleave(2 * batch) * batch
            + per_rank.repeat(world)
        )
        mask = _self_mask(2 * batch, world * 2 * batch, rank * 2 * batch, device)
        return anchors, gather(anchors), offset + per_rank, candidate_index, mask
    mask = _self_mask(batch, samples, offset, device)
    return z1, gather(z1), offset + local, torch.arange(samples, device=device), mask


def _self_mask(rows: int, cols: int, offset: int, device: torch.device) -> Tensor:
    """``(rows, cols)`` bool, False at ``(i, offset + i)``: an anchor is not its own neighbour."""
    mask = torch.ones(rows, cols, dtype=torch.bool, device=device)
    index = torch.arange(rows, device=device)
    mask[index, offset + index] = False
    return mask
