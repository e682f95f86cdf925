"""The teacher field's bookkeeping: how its rows are stored, and the candidates of one batch.

A temporal teacher (:class:`rkdo.teacher.TemporalRKDOLoss`) keeps a row over all ``n`` samples
for every anchor. :func:`choose_storage` picks ``dense`` (``n^2`` entries of the field's dtype)
or ``topk`` (``n k`` int32 indices + float32 values) within a memory budget. A batch may hold a
sample more than once: :class:`CandidateBatch` maps every copy of a candidate to one canonical
column and counts the copies (each copy holds an equal share of the sample's mass), and
:func:`average_repeated_rows` makes repeated anchors write the mean of their rows.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["STORAGES", "FIELD_DTYPES", "MIB", "choose_storage", "CandidateBatch",
           "average_repeated_rows"]

STORAGES: tuple[str, ...] = ("auto", "dense", "topk")
FIELD_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
MIB = 2**20


def choose_storage(storage: str, n: int, topk: int, dtype: torch.dtype, budget_mb: float
                    ) -> str:
    """``dense`` or ``topk``: the one asked for, or for ``auto`` dense when it fits the budget;
    ``ValueError`` when the chosen storage exceeds the budget."""
    dense_bytes = n * n * torch.empty((), dtype=dtype).element_size()
    topk_bytes = n * topk * (4 + 4)  # int32 index + float32 value per entry
    if storage == "auto":
        storage = "dense" if dense_bytes <= budget_mb * MIB else "topk"
    needed = dense_bytes if storage == "dense" else topk_bytes
    if needed > budget_mb * MIB:
        raise ValueError(
            f"storage={storage!r} needs {needed / MIB:.1f} MiB for n_samples={n}, over "
            f"memory_budget_mb={budget_mb:g}; raise memory_budget_mb, lower topk, or use "
            "storage='topk'"
        )
    return storage


class CandidateBatch:
    """Sample bookkeeping for one evaluation: which columns are copies of the same sample."""

    def __init__(self, n_samples: int, candidates: Tensor) -> None:
        device = candidates.device
        count = candidates.shape[0]
        position = torch.full((n_samples,), -1, dtype=torch.long, device=device)
        position[candidates] = torch.arange(count, device=device)
        self.candidates = candidates
        self.position = position
        # the one column every copy of a sample maps to (whichever write won above)
        self.canonical = position[candidates]
        copies = torch.zeros(count, device=device).index_add_(
            0, self.canonical, torch.ones(count, device=device)
        )
        self.copies = copies[self.canonical]


def average_repeated_rows(n_samples: int, rows: Tensor, values: Tensor) -> Tensor:
    """Replace the rows of repeated samples by their mean, so repeated writes agree."""
    count = rows.shape[0]
    position = torch.full((n_samples,), -1, dtype=torch.long, device=rows.device)
    position[rows] = torch.arange(count, device=rows.device)
    canonical = position[rows]
    total = torch.zeros_like(values).index_add_(0, canonical, values)
    copies = torch.zeros(count, device=rows.device, dtype=values.dtype).index_add_(
        0, canonical, torch.ones(count, device=rows.device, dtype=values.dtype)
    )
    return (total / copies[:, None])[canonical]
