"""The field recorder: teacher ``p`` and student ``q`` over a fixed probe set during training.

Every ``record_every`` steps (and at step 0) the model embeds ``N`` fixed probe images, seen
through one fixed pair of views so that only the model changes between frames, and the
:class:`~rkdo.training.loss_call.LossCall` reads the loss's teacher and student rows:

    frame t:  teacher p_t(j|i), student q_t(j|i)   for i, j in the N probe anchors

The probe set is the first ``N`` test images; with temporal recursion the teacher is the field
itself, which exists only for training samples, so the probe set is then the first ``N``
training images. The frames are written as ``fields.npz`` by :func:`rkdo.fields.save_fields`,
and kept in every checkpoint, so that an interrupted or extended run records them all; the last
step is always recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rkdo.fields import Fields, save_fields
from rkdo.training.loss_call import LossCall

__all__ = ["FieldRecorder"]


class FieldRecorder:
    """Collects ``(step, teacher, student)`` frames over ``size`` probe anchors."""

    def __init__(self, data: Any, augment: Any, loss_call: LossCall, size: int, seed: int,
                 device: torch.device) -> None:
        temporal = loss_call.call == "temporal"
        split = data.train if temporal else data.test
        if size > len(split):
            which = "training" if temporal else "test"
            raise ValueError(f"--record-field {size} asks for more probe anchors than the "
                             f"{len(split)} {which} images there are; use --record-field <= "
                             f"{len(split)}")
        self.loss_call = loss_call
        self.index = torch.arange(size, device=device)
        self.labels = split.labels[:size]
        generator = torch.Generator().manual_seed(seed + 12345)
        self.views = tuple(v.to(device) for v in augment(split.images[:size], generator))
        self.steps: list[int] = []
        self.teacher: list[Tensor] = []
        self.student: list[Tensor] = []

    @torch.no_grad()
    def record(self, model: nn.Module, step: int) -> None:
        """Add the frame of ``model`` at training step ``step``."""
        was_training = model.training
        model.eval()
        z1, z2 = (model(view) for view in self.views)
        model.train(was_training)
        labels = self.labels.to(z1.device)
        teacher, student = self.loss_call.fields(z1, z2, labels, self.index, step)
        self.steps.append(step)
        self.teacher.append(teacher.float().cpu())
        self.student.append(student.float().cpu())

    def state(self) -> dict[str, Any]:
        """The frames so far, for the checkpoint (a resumed run continues the recording)."""
        if not self.steps:
            return {"steps": []}
        return {"steps": list(self.steps), "teacher": torch.stack(self.teacher),
                "student": torch.stack(self.student)}

    def load_state(self, state: dict[str, Any], up_to: int) -> None:
        """Continue from :meth:`state` (or from a ``fields.npz``'s arrays), keeping the frames
        recorded at steps ``<= up_to`` (those after the checkpoint are recorded again)."""
        keep = [position for position, step in enumerate(state["steps"]) if step <= up_to]
        self.steps = [int(state["steps"][position]) for position in keep]
        self.teacher = [torch.as_tensor(state["teacher"][position]).cpu() for position in keep]
        self.student = [torch.as_tensor(state["student"][position]).cpu() for position in keep]

    def save(self, path: Path) -> None:
        """Write the frames to ``path`` (``fields.npz``)."""
        save_fields(path, Fields(
            teacher=torch.stack(self.teacher).numpy(),
            student=torch.stack(self.student).numpy(),
            steps=self.steps,
            labels=self.labels.numpy(),
        ))
