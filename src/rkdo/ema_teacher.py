"""SupCon with an EMA teacher: the momentum network's neighbourhoods soften the label target.

I-Con's "+EMA": a teacher network ``theta'`` follows the student ``theta`` as an exponential
moving average and supplies the learned part of the target. For a batch's two views with
student embeddings ``z1, z2`` and teacher embeddings ``e1, e2`` (no gradient), in the pair form
(anchors view 1, candidates view 2):

    theta'   <- m theta' + (1 - m) theta                     (before each training step)
    p(j|i)    = (1 - alpha) 1[y_i = y_j] / n_{y_i} + alpha q'(j|i)
    q'(j|i)   = softmax_j(cos(e1_i, e2_j) / tau)             (the teacher's neighbourhoods)
    q(j|i)    = softmax_j(cos(z1_i, z2_j) / tau)
    L         = 1/B sum_i KL(p(.|i) || q(.|i))

``alpha = 0`` is SupCon (:class:`~rkdo.losses.IConLoss` with the label kernel). Unlike the
recursive teachers (:class:`~rkdo.losses.RKDOLoss`, :class:`~rkdo.teacher.TemporalRKDOLoss`) the
teacher's ``q'`` comes from other weights, at the cost of one more forward pass (no backward) of
both views per step. BatchNorm statistics of the teacher are copied from the student.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from rkdo._validation import check_unit_interval
from rkdo.functional import log_mix, mean_kl
from rkdo.kernels import Cosine, SameLabel
from rkdo.neighbourhood import build_neighbourhood

__all__ = ["EMATeacherLoss"]


class EMATeacherLoss(nn.Module):
    """SupCon whose target is mixed with an EMA teacher's neighbourhoods (module docstring).

    Args:
        alpha: the teacher's weight in the target, in [0, 1].
        momentum: ``m`` of the EMA, in [0, 1).
        temperature: ``tau`` of the cosine kernels.

    Call :meth:`attach` with the student network before training; the loss then takes the
    views themselves, ``loss(z1, z2, labels=y, view1=v1, view2=v2)``.
    """

    needs_views = True

    def __init__(self, alpha: float = 0.5, momentum: float = 0.99,
                 temperature: float = 0.5) -> None:
        super().__init__()
        self.alpha = check_unit_interval("alpha", alpha)
        self.momentum = check_unit_interval("momentum", momentum, high_open=True)
        self.supervisory = SameLabel()
        self.learned = Cosine(temperature)
        self.teacher: nn.Module | None = None
        self._student: list[nn.Module] = []  # not a submodule: its weights are the model's

    def attach(self, *, model: nn.Module, **_: object) -> None:
        """Follow ``model``: the teacher starts as a copy of it, never trained by gradients."""
        self.teacher = copy.deepcopy(model)
        for param in self.teacher.parameters():
            param.requires_grad_(False)
        self._student = [model]

    @torch.no_grad()
    def update_teacher(self) -> None:
        """``theta' <- m theta' + (1 - m) theta``; buffers (BatchNorm statistics) copied."""
        if self.teacher is None or not self._student:
            raise ValueError("the EMA teacher follows no model: call attach(model=...) first")
        student = self._student[0]
        for mine, theirs in zip(self.teacher.parameters(), student.parameters(), strict=True):
            mine.lerp_(theirs.detach(), 1.0 - self.momentum)
        for mine, theirs in zip(self.teacher.buffers(), student.buffers(), strict=True):
            mine.copy_(theirs)

    def target_log_prob(self, z1: Tensor, z2: Tensor, labels: Tensor, e1: Tensor,
                        e2: Tensor) -> Tensor:
        """``log p`` of the module docstring for student and teacher embeddings."""
        nb = build_neighbourhood(z1, z2, form="pair", labels=labels)
        log_labels = self.supervisory.log_prob(nb)
        if self.alpha == 0.0:
            return log_labels
        teacher_nb = build_neighbourhood(e1.float(), e2.float(), form="pair", labels=labels)
        return log_mix(log_labels, self.learned.log_prob(teacher_nb).detach(), self.alpha)

    def forward(self, z1: Tensor, z2: Tensor, *, labels: Tensor, view1: Tensor | None = None,
                view2: Tensor | None = None, **_: object) -> Tensor:
        """The loss of a batch (see the class docstring)."""
        if view1 is None or view2 is None:
            raise ValueError("the EMA teacher needs the views: loss(z1, z2, labels=y, view1=v1, "
                             "view2=v2)")
        if self.training:
            self.update_teacher()
        if self.teacher is None:
            raise ValueError("the EMA teacher follows no model: call attach(model=...) first")
        with torch.no_grad():
            e1, e2 = self.teacher(torch.cat((view1, view2))).chunk(2)
        log_p = self.target_log_prob(z1, z2, labels, e1, e2)
        nb = build_neighbourhood(z1, z2, form="pair", labels=labels)
        return mean_kl(log_p, self.learned.log_prob(nb))

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, momentum={self.momentum}"
