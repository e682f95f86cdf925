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

__all__ = ["FORMS", "Neighbourhood", "build_neighbourhood", "check_form"]

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


def _check_fact(name: str, value: Tensor | None, batch: int) -> Tensor | None:
    if value is None:
        return None
    if value.shape[0] != batch:
        raise ValueError(
            f"{name} must have one entry per sample: expected first dimension {batch}, "
            f"got shape {tuple(value.shape)}"
        )
    return value


def check_form(form: str) -> str:
    """``form`` if it is one of :data:`FORMS`, else ``ValueError``."""
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    return form


def _check_views(z1: Tensor, z2: Tensor | None, form: str) -> int:
    """The batch size, once the views suit the form."""
    if z1.dim() != 2:
        raise ValueError(f"embeddings must be 2-D (batch, dim), got shape {tuple(z1.shape)}")
    batch = z1.shape[0]
    if batch < 2:
        raise ValueError(
            f"a neighbourhood loss needs a batch of at least 2 samples, got {batch}; "
            "increase the batch size"
        )
    if form == "single":
        if z2 is not None:
            raise ValueError("form='single' takes one view: call loss(z) without z2")
    else:
        if z2 is None:
            raise ValueError(f"form={form!r} needs two views: call loss(z1, z2)")
        if z2.shape != z1.shape:
            raise ValueError(
                f"the two views must have the same shape, got {tuple(z1.shape)} and "
                f"{tuple(z2.shape)}"
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
        name: _check_fact(name, value, batch)
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
