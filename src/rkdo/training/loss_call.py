"""How each loss is called on a batch, and how its teacher and student are read for recording.

One training step hands the loss the embeddings of the two views and what the batch knows:

    temporal     loss(z1, z2, index=I, step=t, labels=y)        (a teacher field across steps)
    pair         loss(z1, z2, labels=y [, inputs=x | view1=v1, view2=v2])   (pair, symmetric)
    single       loss(z1, labels=y [, inputs=x])                 (one view: sne, tsne, kmeans)

with ``x`` the flattened first view when the method's supervisory kernel needs inputs, and the
views' images when its loss runs a teacher network of its own (``needs`` of its entry). A
:class:`LossCall` says which call a loss takes; the loop, the FLOP profiler
(:mod:`rkdo.bench.flops`) and the field recorder all call losses through it. Both it and
:func:`build_loss` (the loss a config asks for: an entry of :data:`rkdo.methods.METHODS`, maybe
wrapped in the temporal teacher) read what they need from the method's registry entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from rkdo import distributed, methods
from rkdo.neighbourhood import build_neighbourhood
from rkdo.teacher import TemporalRKDOLoss
from rkdo.training.config import TrainConfig

__all__ = ["CALLS", "CONFIG_OPTIONS", "LossCall", "build_loss"]

CALLS = ("temporal", "pair", "single")
CONFIG_OPTIONS = {"temperature": "temperature", "perplexity": "perplexity",
                  "n_clusters": "n_clusters", "dim": "embedding_dim", "alpha": "alpha",
                  "momentum": "ema_momentum"}
"""A method's option -> the TrainConfig field that sets it (options without a field, such as
``dof``, keep the method's default; a field left ``None`` too)."""


@dataclass(frozen=True)
class LossCall:
    """A loss and the way it is called on a batch (see the module docstring).

    Attributes:
        loss: the loss module.
        call: ``temporal``, ``pair`` or ``single``.
        needs_inputs: pass the flattened first view as ``inputs``.
        needs_views: pass both views as ``view1``, ``view2`` (the EMA teacher's forward).
    """

    loss: nn.Module
    call: str = "pair"
    needs_inputs: bool = False
    needs_views: bool = False

    def __post_init__(self) -> None:
        if self.call not in CALLS:
            raise ValueError(f"unknown loss call {self.call!r}; choose one of: {', '.join(CALLS)}")

    @classmethod
    def for_config(cls, loss: nn.Module, config: TrainConfig) -> LossCall:
        """How ``config``'s loss (built by :func:`build_loss`) is called."""
        method = config.method_entry()
        if config.resolved_recursion().startswith("temporal"):
            return cls(loss, "temporal")
        form = config.form or method.form
        return cls(loss, "single" if form == "single" else "pair", "inputs" in method.needs,
                   "views" in method.needs)

    def __call__(
        self,
        z1: Tensor,
        z2: Tensor,
        *,
        labels: Tensor,
        view1: Tensor | None = None,
        index: Tensor | None = None,
        step: int = 0,
        view2: Tensor | None = None,
    ) -> Tensor:
        """The loss of a batch: embeddings ``z1``, ``z2`` of the views, their ``labels``, the
        first view's images ``view1`` (for inputs), dataset ``index`` and ``step`` (temporal)."""
        if self.call == "temporal":
            if index is None:
                raise ValueError("a temporal loss needs index=<(B,) dataset indices>")
            return self.loss(z1, z2, index=index, step=step, labels=labels)
        extras: dict[str, Tensor] = {"labels": labels}
        if self.needs_views:
            if view1 is None or view2 is None:
                raise ValueError("this loss needs view1=<images> and view2=<images>")
            extras.update(view1=view1, view2=view2)
        if self.needs_inputs:
            if view1 is None:
                raise ValueError("this method's supervisory kernel needs view1=<input images>")
            extras["inputs"] = view1.flatten(1).float()
        if self.call == "single":
            return self.loss(z1, **extras)
        return self.loss(z1, z2, **extras)

    @torch.no_grad()
    def fields(
        self, z1: Tensor, z2: Tensor, labels: Tensor, index: Tensor, step: int
    ) -> tuple[Tensor, Tensor]:
        """Teacher ``p`` and student ``q`` over a probe set, each ``(N, N)`` row-stochastic.

        With temporal recursion the teacher is the field's rows ``index`` restricted to the
        probe set (renormalised); otherwise the loss's final in-step target, on the pair form.
        """
        nb = build_neighbourhood(z1, z2, form="pair", labels=labels)
        loss = self.loss
        if self.call == "temporal":
            rows = loss.rows(index)[:, index].float()
            teacher = rows / rows.sum(dim=-1, keepdim=True).clamp_min(1e-30)
            student = loss.learned.log_prob(nb, loss.temperature_at(step)).exp()
            return teacher, student
        if not hasattr(loss, "teacher_log_prob"):
            raise ValueError(f"{type(loss).__name__} exposes no teacher to record; "
                             "use one of rkdo's own methods")
        return loss.teacher_log_prob(nb).exp(), loss.learned.log_prob(nb).exp()


def build_loss(config: TrainConfig, n_samples: int, total_steps: int = 1) -> nn.Module:
    """The loss module ``config`` asks for (a preset of :mod:`rkdo.methods`, maybe temporal)."""
    recursion = config.resolved_recursion()
    distributed_run = distributed.is_distributed()
    method = config.method_entry()
    options: dict[str, Any] = {
        option: getattr(config, CONFIG_OPTIONS[option]) for option in method.options
        if option in CONFIG_OPTIONS and getattr(config, CONFIG_OPTIONS[option]) is not None}
    if method.outside:
        if recursion != "none":
            raise ValueError(f"{config.method} {method.outside}: use --recursion none/auto")
        return methods.get(config.method, gather_distributed=distributed_run, **options)
    in_step = recursion in ("in-step", "temporal+in-step")
    if in_step:
        options.update(alpha=config.alpha, depth=config.depth, beta=config.beta,
                       detach_teacher=config.detach_teacher)
    if not recursion.startswith("temporal"):
        return methods.get(config.method, recursive=in_step, debias=config.debias,
                           form=config.form, gather_distributed=distributed_run, **options)
    if method.temporal is None:
        raise ValueError(f"method {config.method!r} has no temporal form; use --recursion "
                         "none or in-step")
    inner = methods.get(config.method, recursive=True, debias=0.0, form=config.form,
                        gather_distributed=distributed_run, **options) if in_step else None
    return TemporalRKDOLoss(
        n_samples,
        alpha=config.alpha,
        schedule=config.alpha_schedule,
        total_steps=total_steps,
        alpha_final=config.alpha_final,
        temperature=config.temperature,
        beta=config.beta,
        debias=config.debias if config.debias is not None else method.debias,
        supervisory=method.temporal,
        in_step=inner,
        gather_distributed=distributed_run,
    )
