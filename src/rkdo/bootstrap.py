"""Cross-entropy of a linear classifier head, plain or bootstrapped (Reed et al., 2015).

The field's baseline under noisy labels. A linear head on the (L2-normalised) embedding ``z``,
trained with the encoder, predicts ``q = softmax((W z + b) / tau)`` over the ``C`` classes (``tau``
scales the logits as the cosine kernels' temperature does; a unit-norm ``z`` with a freshly
initialised ``W`` would otherwise give near-uniform predictions for many steps); the target
mixes the (noisy) one-hot label ``e_y`` with the model's own prediction:

    t     = (1 - alpha) e_y + alpha s,    s = q               (soft bootstrapping)
                                          s = e_{argmax q}    (hard bootstrapping)
    L     = -1/B sum_i sum_k t_ik log q_ik                   (averaged over the two views)

``alpha = 0`` is plain cross-entropy. Reed et al. write ``beta = 1 - alpha`` for the label's
weight (soft 0.95, hard 0.8 in their experiments). As in their formula, the soft target keeps its
gradient (it adds ``alpha`` times the prediction's entropy to the loss); the hard target is a
constant. In RKDO's words this is the teacher ``p = (1 - alpha) p_labels + alpha q`` on the
classifier kernel: the same mixing, over classes instead of samples.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rkdo._validation import check_int, check_positive, check_unit_interval

__all__ = ["BOOTSTRAP_MODES", "ClassifierLoss"]

BOOTSTRAP_MODES = ("soft", "hard")


class ClassifierLoss(nn.Module):
    """Cross-entropy of a linear head on the embeddings, optionally bootstrapped.

    Args:
        dim: the embedding dimension.
        num_classes: C (the head may also be made later by :meth:`attach`).
        alpha: the weight of the model's own prediction in the target, in [0, 1).
        mode: ``soft`` or ``hard`` bootstrapping (ignored at ``alpha = 0``).
        temperature: ``tau``, the logits' scale ``1 / tau``.
    """

    needs_views = False

    def __init__(self, dim: int, num_classes: int | None = None, *, alpha: float = 0.0,
                 mode: str = "soft", temperature: float = 1.0) -> None:
        super().__init__()
        self.dim = check_int("dim", dim, low=1)
        self.alpha = check_unit_interval("alpha", alpha, high_open=True)
        if mode not in BOOTSTRAP_MODES:
            raise ValueError(f"bootstrap mode must be one of {BOOTSTRAP_MODES}, got {mode!r}")
        self.mode = mode
        self.temperature = check_positive("temperature", temperature)
        self.head: nn.Linear | None = None
        if num_classes is not None:
            self.attach(num_classes=num_classes)

    def attach(self, *, num_classes: int, **_: object) -> None:
        """Make the ``C``-way head (before the optimiser is built, so that it is trained)."""
        check_int("num_classes", num_classes, low=2)
        param = next(self.parameters(), None)
        self.head = nn.Linear(self.dim, num_classes)
        if param is not None:
            self.head.to(param.device)

    def classify(self, z: Tensor) -> Tensor:
        """The head's logits ``(W z + b) / tau``, ``(B, C)``."""
        if self.head is None:
            raise ValueError("the classifier head has no classes yet: call attach(num_classes=C)")
        return self.head(z.to(self.head.weight.dtype)) / self.temperature

    def _one_view(self, z: Tensor, labels: Tensor) -> Tensor:
        log_q = torch.log_softmax(self.classify(z).float(), dim=1)
        nll = -log_q.gather(1, labels[:, None]).squeeze(1)
        if self.alpha == 0.0:
            return nll.mean()
        if self.mode == "soft":
            own = -(log_q.exp() * log_q).sum(dim=1)
        else:
            own = -log_q.gather(1, log_q.detach().argmax(dim=1, keepdim=True)).squeeze(1)
        return ((1.0 - self.alpha) * nll + self.alpha * own).mean()

    def forward(self, z1: Tensor, z2: Tensor | None = None, *, labels: Tensor | None = None,
                **_: object) -> Tensor:
        """The loss of the views' embeddings ``z1`` (and ``z2``) with their ``labels``."""
        if labels is None:
            raise ValueError("the classifier loss needs labels=<(B,) class indices>")
        labels = labels.long()
        if z2 is None:
            return self._one_view(z1, labels)
        return 0.5 * (self._one_view(z1, labels) + self._one_view(z2, labels))

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, alpha={self.alpha}, mode={self.mode!r}, "
                f"temperature={self.temperature}")
