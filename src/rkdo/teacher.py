"""Temporal RKDO: a persistent teacher field over the whole dataset, updated across training steps.

The reference notebooks recurse inside one step. The paper's teacher instead evolves over training
iterations ``t``: every anchor ``i`` of the dataset has a teacher row ``p(t)(.|i)`` over all ``n``
samples, pulled towards the student's past beliefs,

    p(t)(.|i) = (1 - alpha_t) p(t-1)(.|i) + alpha_t q(t-1)(.|i),     p(0) = static supervisory p

with ``alpha_t`` annealed from large (the teacher meets the student) to small (the teacher holds
its ground), and the student's temperature ``tau(t) = tau0 (1 - beta t / T)`` over the ``T``
training steps (distinct from the in-step schedule of :class:`~rkdo.losses.RKDOLoss`); both
schedules live in :mod:`rkdo.schedules` and are re-exported here.

In a mini-batch step the student only sees the candidates ``C`` of the batch (the view-2
embeddings of the batch's samples, named by their dataset indices). For each anchor ``i``:

1. **target**: its teacher row restricted to ``C`` and renormalised, then debiased like I-Con,
   ``target = (1 - a) p(.|i)|_C / p(C|i) + a / |C|``;
2. **loss**: ``1/B sum_i KL(target_i || q(.|i))`` with ``q`` the cosine softmax at ``tau(t)``
   (optionally RKDO's in-step recursion on top, starting from this target);
3. **update** (training mode only, no gradient): the whole row becomes an exponential moving
   average of the student, ``p(.|i) <- (1 - alpha_t) p(.|i) + alpha_t q~(.|i)``, where ``q~`` is
   the detached student row over ``C`` and zero outside it. Rows stay distributions over the
   ``n`` samples; on the full batch (``C`` = all samples) this is the paper's update exactly.

So the target at a visit of ``i`` is the teacher left by its previous visit (the student's past
beliefs), never the current student, and it carries no gradient. ``alpha`` is a rate per *visit*:
a row moves only when its sample is in the batch, about once per epoch with shuffled batches, but
at every step on the full batch, where even ``alpha = 0.05`` hands the teacher over to the student
within a hundred steps (``benchmarks/temporal.py`` shows it).

Because ``p(0)`` is the static kernel and nothing moves at ``alpha = 0``, the loss at
``alpha = 0`` (and ``beta = 0``) is exactly :class:`~rkdo.losses.IConLoss` with the same kernels.

Representation. Each row is stored as ``p(j|i) = c_i p0(j|i) + e_i(j)``: the static kernel
``p0`` (never materialised: one-hot on ``i`` for augmentation pairs, ``1[y_j = y_i] / n_y`` for
labels, ``n_y`` counted over the samples seen so far unless the dataset's ``labels`` are given)
with a per-row weight ``c_i = prod (1 - alpha)``, plus the accumulated student mass
``e_i``, kept either

- ``dense``: ``e`` as an ``n x n`` matrix (float32, or float16/bfloat16 to halve it); exact.
  Digits (n = 1,797) takes 13 MB, a 10k subset 400 MB in float32;
- ``topk``: the ``k`` largest entries of ``e_i`` (int32 indices + float32 values) plus a scalar
  leak ``l_i`` spread uniformly over all ``n`` samples, ``e_i(j) = s_i(j) + l_i / n``. After each
  update the row keeps its ``k`` largest entries and the mass of the others goes to the leak, so
  rows still sum to one but evicted entries are smeared uniformly (an approximation; with
  ``k >= n`` it is exact). Fashion-MNIST (n = 60,000) with ``k = 64`` takes 31 MB, with
  ``k = 1,024`` 0.5 GB;
- ``auto``: dense when ``n^2`` entries fit in ``memory_budget_mb`` (MiB), else top-k
  (:mod:`rkdo.teacher_storage` sizes them and keeps a batch's candidates).

A batch may repeat a sample: each copy of a repeated candidate holds an equal share of the
sample's mass, the student's mass over copies is summed, and repeated anchors write the average
of their student rows. With ``gather_distributed`` the candidates are gathered from all ranks
and every rank applies the updates of the global batch, so all ranks hold the same field.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rkdo import distributed
from rkdo._validation import check_int, check_positive, check_unit_interval
from rkdo.functional import log_debias, log_normalize, mean_kl, recursive_kl
from rkdo.kernels import Cosine
from rkdo.losses import RKDOLoss
from rkdo.neighbourhood import build_neighbourhood, check_fact
from rkdo.schedules import (
    ALPHA_SCHEDULES,
    AlphaSchedule,
    alpha_schedule,
    temperature_schedule,
    temporal_temperature,
)
from rkdo.teacher_storage import (
    FIELD_DTYPES,
    STORAGES,
    CandidateBatch,
    average_repeated_rows,
    choose_storage,
)

__all__ = [
    "ALPHA_SCHEDULES",
    "AlphaSchedule",
    "STORAGES",
    "SUPERVISORY",
    "alpha_schedule",
    "temporal_temperature",
    "TemporalRKDOLoss",
]

SUPERVISORY: tuple[str, ...] = ("augmentation", "labels")


class TemporalRKDOLoss(nn.Module):
    """Temporal RKDO (see the module docstring): a teacher field keyed by dataset sample index.

    Args:
        n_samples: dataset size ``n``; ``index`` values must lie in ``[0, n)``.
        alpha: teacher update rate at the start of training, in [0, 1].
        schedule: ``alpha_t`` schedule, one of :data:`ALPHA_SCHEDULES`.
        total_steps: ``T``, the number of training steps (for both schedules).
        alpha_final: ``alpha_t`` at ``t = T`` for the annealed schedules.
        temperature: ``tau0`` of the cosine student kernel.
        beta: temporal temperature decay in [0, 1): ``tau(t) = tau0 (1 - beta t / T)``.
        debias: uniform leak ``a`` of the restricted target, as in I-Con, in [0, 1).
        supervisory: the static ``p0``: ``"augmentation"`` (the other view of the same sample)
            or ``"labels"`` (every sample of the same class; pass ``labels=`` to forward).
        storage: ``"dense"``, ``"topk"`` or ``"auto"`` (dense when it fits the budget).
        topk: entries kept per row by the top-k storage.
        memory_budget_mb: the field's memory budget in MiB; a storage that exceeds it raises.
        in_step: an :class:`~rkdo.losses.RKDOLoss` whose ``alpha``, ``depth``, ``beta`` and
            ``detach_teacher`` add the in-step recursion on top of the temporal target (its
            kernels are not used: the target is this field's, the student this cosine kernel).
        gather_distributed: gather candidates from all ranks; the field stays identical on
            every rank.
        labels: optional ``(n,)`` class labels of the whole dataset, so that ``n_y`` of the
            label kernel is exact from the first step (otherwise it counts the samples seen).
        dtype: storage dtype of the dense field (float32, float16 or bfloat16).

    The field lives in buffers, so ``state_dict`` / ``load_state_dict`` save and restore it.
    In eval mode the field is read and never written.
    """

    def __init__(
        self,
        n_samples: int,
        *,
        alpha: float = 0.5,
        schedule: str = "constant",
        total_steps: int = 1,
        alpha_final: float = 0.0,
        temperature: float = 0.5,
        beta: float = 0.1,
        debias: float = 0.0,
        supervisory: str = "augmentation",
        storage: str = "auto",
        topk: int = 64,
        memory_budget_mb: float = 1024,
        in_step: RKDOLoss | None = None,
        gather_distributed: bool = False,
        labels: Tensor | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.n_samples = n = check_int("n_samples", n_samples, low=2)
        self.total_steps = check_int("total_steps", total_steps, low=1)
        self.alpha = check_unit_interval("alpha", alpha)
        self.alpha_final = check_unit_interval("alpha_final", alpha_final)
        self.schedule = schedule
        self.alpha_at = alpha_schedule(schedule, alpha, total_steps, final=alpha_final)
        self.learned = Cosine(temperature)
        self.temperature = self.learned.temperature
        self.beta = check_unit_interval("beta", beta, high_open=True)
        self.debias = check_unit_interval("debias", debias, high_open=True)
        if supervisory not in SUPERVISORY:
            raise ValueError(f"supervisory must be one of {SUPERVISORY}, got {supervisory!r}")
        self.supervisory = supervisory
        if in_step is not None and not isinstance(in_step, RKDOLoss):
            raise ValueError(f"in_step must be an rkdo.RKDOLoss or None, got {type(in_step)}")
        self.in_step = in_step
        self.gather_distributed = bool(gather_distributed)
        if dtype not in FIELD_DTYPES:
            raise ValueError(f"dtype must be one of {FIELD_DTYPES}, got {dtype!r}")
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {STORAGES}, got {storage!r}")
        self.topk = min(check_int("topk", topk, low=1), n)
        self.memory_budget_mb = budget = check_positive("memory_budget_mb", memory_budget_mb)
        self.storage = choose_storage(storage, n, self.topk, dtype, budget)
        self._register_field(dtype)
        if supervisory == "labels":
            self._register_labels(labels)
        elif labels is not None:
            raise ValueError("labels= is only used with supervisory='labels'")

    def _register_field(self, dtype: torch.dtype) -> None:
        """The field's buffers: the static weights ``c_i`` and ``e``, dense or as top-k
        entries plus a leak (module docstring)."""
        n = self.n_samples
        self.register_buffer("static_weight", torch.ones(n))
        if self.storage == "dense":
            self.register_buffer("explicit", torch.zeros(n, n, dtype=dtype))
        else:
            self.register_buffer("sparse_index", torch.zeros(n, self.topk, dtype=torch.int32))
            self.register_buffer("sparse_value", torch.zeros(n, self.topk))
            self.register_buffer("leak", torch.zeros(n))

    def _register_labels(self, labels: Tensor | None) -> None:
        """The label kernel's buffers: each sample's label (-1: unseen) and the class sizes."""
        n = self.n_samples
        self.register_buffer("sample_labels", torch.full((n,), -1, dtype=torch.long))
        self.register_buffer("class_counts", torch.zeros(n))
        if labels is not None:
            labels = torch.as_tensor(labels, dtype=torch.long)
            if labels.shape != (n,):
                raise ValueError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
            self.sample_labels.copy_(labels)
            self.class_counts.index_add_(0, labels, torch.ones(n))

    # -- schedules ---------------------------------------------------------------------------

    def temperature_at(self, step: int) -> float:
        """The student's temperature ``tau(t) = tau0 (1 - beta t / T)`` at training step ``t``."""
        return temporal_temperature(self.temperature, self.beta, step, self.total_steps)

    def memory_bytes(self) -> int:
        """Bytes held by the field's buffers."""
        return sum(b.numel() * b.element_size() for b in self.buffers())

    # -- the field -----------------------------------------------------------------------------

    def _record_labels(self, batch: CandidateBatch, labels: Tensor) -> None:
        unseen = self.sample_labels[batch.candidates] < 0
        columns = torch.arange(batch.candidates.shape[0], device=labels.device)
        first_copy = batch.canonical == columns
        self.class_counts.index_add_(0, labels, (unseen & first_copy).to(self.class_counts.dtype))
        self.sample_labels[batch.candidates] = labels

    def _static(self, anchors: Tensor, batch: CandidateBatch, anchor_labels: Tensor | None,
                candidate_labels: Tensor | None) -> Tensor:
        """``p0(j|i)`` at dataset scale for every (anchor, candidate) pair, ``(B, N)``."""
        if self.supervisory == "augmentation":
            return (anchors[:, None] == batch.candidates[None, :]).float()
        same = (anchor_labels[:, None] == candidate_labels[None, :]).float()
        return same / self.class_counts[anchor_labels].clamp_min(1.0)[:, None]

    def _explicit(self, anchors: Tensor, batch: CandidateBatch) -> Tensor:
        """The accumulated student mass ``e_i(j)`` for every (anchor, candidate) pair."""
        if self.storage == "dense":
            return self.explicit[anchors[:, None], batch.candidates[None, :]].float()
        index = self.sparse_index[anchors].long()
        column = batch.position[index]
        columns = batch.candidates.shape[0]
        block = torch.zeros(anchors.shape[0], columns + 1, device=anchors.device)
        block.scatter_add_(1, column.masked_fill(column < 0, columns), self.sparse_value[anchors])
        leak = (self.leak[anchors] / self.n_samples)[:, None]
        return block[:, :columns][:, batch.canonical] + leak

    @torch.no_grad()
    def log_target(self, anchors: Tensor, batch: CandidateBatch,
                   anchor_labels: Tensor | None = None, candidate_labels: Tensor | None = None,
                   dtype: torch.dtype = torch.float32) -> Tensor:
        """``log`` of the debiased teacher rows restricted to the batch's candidates, ``(B, N)``."""
        mass = (
            self.static_weight[anchors][:, None].to(dtype)
            * self._static(anchors, batch, anchor_labels, candidate_labels).to(dtype)
            + self._explicit(anchors, batch).to(dtype)
        ) / batch.copies[None, :].to(dtype)
        log_p = log_normalize(mass.log(), mass > 0)
        return log_debias(log_p, self.debias) if self.debias > 0 else log_p

    @torch.no_grad()
    def update(self, rows: Tensor, batch: CandidateBatch, student: Tensor, alpha: float) -> None:
        """``p(.|i) <- (1 - alpha) p(.|i) + alpha q~(.|i)`` for the rows ``rows`` (sample indices).

        ``student`` is ``(R, N)``: each row's student distribution over the batch's candidates.
        """
        if alpha == 0.0:
            return
        student = average_repeated_rows(self.n_samples, rows, student.float())
        keep = 1.0 - alpha
        self.static_weight[rows] = keep * self.static_weight[rows]
        if self.storage == "dense":
            explicit = keep * self.explicit[rows].float()
            explicit.index_add_(1, batch.candidates, alpha * student)
            self.explicit[rows] = explicit.to(self.explicit.dtype)
            return
        columns = batch.candidates.shape[0]
        index = self.sparse_index[rows].long()
        value = keep * self.sparse_value[rows]
        column = batch.position[index]
        in_batch = column >= 0
        # stored entries that are candidates move to their candidate's column, then the
        # student's mass is added there (summed over copies of a sample)
        block = torch.zeros(rows.shape[0], columns + 1, device=rows.device)
        block.scatter_add_(1, column.masked_fill(~in_batch, columns), value)
        block = block[:, :columns].index_add_(1, batch.canonical, alpha * student)
        values = torch.cat([value.masked_fill(in_batch, 0.0), block], dim=1)
        indices = torch.cat([index, batch.candidates.expand(rows.shape[0], columns)], dim=1)
        kept, where = values.topk(self.topk, dim=1)
        dropped = (values.sum(dim=1) - kept.sum(dim=1)).clamp_min(0.0)
        self.sparse_index[rows] = indices.gather(1, where).to(torch.int32)
        self.sparse_value[rows] = kept
        self.leak[rows] = keep * self.leak[rows] + dropped

    @torch.no_grad()
    def rows(self, index: Tensor) -> Tensor:
        """The full teacher rows ``p(.|i)`` over all ``n`` samples, ``(len(index), n)``.

        Materialises ``len(index) x n`` floats: for inspection and tests, not for training.
        With the label kernel, ``p0`` is known only for samples whose label has been seen.
        """
        index = torch.as_tensor(index, dtype=torch.long, device=self.static_weight.device)
        everything = torch.arange(self.n_samples, device=index.device)
        batch = CandidateBatch(self.n_samples, everything)
        labels = anchor_labels = None
        if self.supervisory == "labels":
            labels = self.sample_labels
            anchor_labels = labels[index]
        static = self._static(index, batch, anchor_labels, labels)
        if self.supervisory == "labels":
            static = static * (labels >= 0)[None, :]
        return self.static_weight[index][:, None] * static + self._explicit(index, batch)

    # -- the loss --------------------------------------------------------------------------------

    def _check_batch(self, z1: Tensor, index: Tensor, labels: Tensor | None) -> None:
        """Shapes, dtypes and devices of a batch (never values: no synchronisation); ``index``
        and ``labels`` may live on another device (they are moved to the field's)."""
        batch = z1.shape[0]
        if not isinstance(index, Tensor) or index.shape != (batch,):
            shape = tuple(index.shape) if isinstance(index, Tensor) else type(index).__name__
            raise ValueError(
                f"index must be a 1-D tensor of dataset indices, one per sample: expected shape "
                f"({batch},), got {shape}"
            )
        check_fact("index", index, batch, index.device)
        if self.supervisory == "labels" and labels is None:
            raise ValueError("supervisory='labels' needs labels=<(B,) class labels> in forward")
        if labels is not None:
            check_fact("labels", labels, batch, labels.device)
        if z1.device != self.static_weight.device:
            raise ValueError(
                f"the teacher field is on {self.static_weight.device}, the embeddings on "
                f"{z1.device}; move the loss with loss.to({str(z1.device)!r})"
            )

    def forward(
        self,
        z1: Tensor,
        z2: Tensor,
        *,
        index: Tensor,
        step: int,
        labels: Tensor | None = None,
    ) -> Tensor:
        """The temporal RKDO loss of a batch, then (in training mode) the teacher update.

        Args:
            z1, z2: ``(B, d)`` embeddings of the two views; view 1 anchors, view 2 candidates.
            index: ``(B,)`` dataset indices of the batch's samples.
            step: the training step ``t`` (drives ``alpha_t`` and ``tau(t)``).
            labels: ``(B,)`` class labels, needed with ``supervisory="labels"``.
        """
        nb = build_neighbourhood(z1, z2, form="pair", gather_distributed=self.gather_distributed)
        self._check_batch(z1, index, labels)
        index = index.to(device=self.static_weight.device, dtype=torch.long)
        gather = lambda t: t  # noqa: E731
        if self.gather_distributed and distributed.is_distributed():
            gather = distributed.gather_no_grad
        candidates = gather(index)
        batch = CandidateBatch(self.n_samples, candidates)
        anchor_labels = candidate_labels = None
        if labels is not None and self.supervisory == "labels":
            anchor_labels = labels.to(device=index.device, dtype=torch.long)
            candidate_labels = gather(anchor_labels)
            if self.training:
                self._record_labels(batch, candidate_labels)
        tau = self.temperature_at(step)
        if self.in_step is None:
            log_q = self.learned.log_prob(nb, tau)
        else:
            # in-step schedule on top of the temporal temperature; similarities computed once
            students = self.learned.log_probs(
                nb, temperature_schedule(tau, self.in_step.beta, self.in_step.depth)
            )
            log_q = students[0]
        log_target = self.log_target(index, batch, anchor_labels, candidate_labels, log_q.dtype)
        if self.in_step is None:
            loss = mean_kl(log_target, log_q)
        else:
            loss = recursive_kl(log_target, students, self.in_step.alpha,
                                detach_teacher=self.in_step.detach_teacher)
        if self.training:
            # every rank writes the rows of the global batch, so the fields stay equal
            self.update(candidates, batch, gather(log_q.detach().exp()), self.alpha_at(step))
        return loss

    def extra_repr(self) -> str:
        return (
            f"n_samples={self.n_samples}, alpha={self.alpha}, schedule={self.schedule!r}, "
            f"total_steps={self.total_steps}, alpha_final={self.alpha_final}, "
            f"temperature={self.temperature}, beta={self.beta}, debias={self.debias}, "
            f"supervisory={self.supervisory!r}, storage={self.storage!r}"
            + (f", topk={self.topk}" if self.storage == "topk" else "")
        )
