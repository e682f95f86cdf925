"""I-Con and RKDO losses as ``nn.Module``s.

I-Con (Alshammari et al., ICLR 2025), for a supervisory kernel ``p`` and a learned kernel ``q``:

    L = 1/n sum_i KL(p(.|i) || q(.|i))

RKDO makes the teacher recursive inside one step (the reference notebooks' form), depth ``K``:

    p(0) = supervisory p,  q(t) = q at temperature tau_t = tau * (1 - beta t / K)
    p(t) = (1 - alpha) p(t-1) + alpha q(t-1),          t = 1..K
    L    = sum_{t=1}^{K} 1/n sum_i KL(p(t)(.|i) || q(t)(.|i))

With the defaults (``p(0)`` = identity over the batch, cosine ``q``, ``alpha = 0.5``,
``tau = 0.5``, ``beta = 0.1``, ``K = 3``, gradient through the teacher) this is exactly what the
reference notebooks compute; ``detach_teacher=True`` stops the gradient through ``p(t)``.

Both losses take one or two views, ``loss(z1, z2)`` or ``loss(z)`` (form ``single``), plus the
per-sample facts their supervisory kernel needs (``labels=``, ``inputs=``, ``ids=``,
``assignments=``). See :mod:`rkdo.neighbourhood` for the pair / symmetric / single forms and
global negatives under ``torch.distributed``.

Three paths compute the same numbers: the log-probability path (any kernels), the fused path
from a softmax kernel's scores (:mod:`rkdo.fused_scores`, one ``(B, N)`` row block pass) and the
streaming path (:mod:`rkdo.streaming`: blocks of anchors against blocks of candidates, no
``(B, N)`` matrix of floats, memory ``O(B d + block^2)``). ``streaming=None`` (the default)
takes the streaming path when ``B * N > STREAMING_ABOVE`` (``2^25``: a pair-form batch above
5,792, a symmetric one above 2,896) and the kernels allow it (a learned kernel that is a
softmax of scores: cosine, Gaussian, Student-t; a supervisory kernel of equal facts with any
leak: augmentation pairs, labels, cluster assignments); ``True`` always (refused for other
kernels), ``False`` never. The masked forms (symmetric, single) still hold their ``(B, N)``
boolean self-mask (1 byte per pair), made by :func:`~rkdo.neighbourhood.build_neighbourhood`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rkdo._validation import check_int, check_unit_interval
from rkdo.functional import log_mix, mean_kl, recursive_kl
from rkdo.fused_scores import softmax_mean_kl, softmax_recursive_kl
from rkdo.kernels import Augmentation, Cosine, Debiased, Kernel, LearnedKernel
from rkdo.neighbourhood import Neighbourhood, build_neighbourhood, check_form
from rkdo.same_fact import SameFactTarget
from rkdo.schedules import temperature_schedule
from rkdo.streaming import streaming_recursive_kl

__all__ = ["STREAMING_ABOVE", "IConLoss", "RKDOLoss"]

STREAMING_ABOVE = 2 ** 25  # streaming=None streams when anchors x candidates exceed this


def _supervisory(supervisory: Kernel | None, debias: float) -> Kernel:
    debias = check_unit_interval("debias", debias, high_open=True)
    kernel = Augmentation() if supervisory is None else supervisory
    return kernel.leak(debias) if debias > 0.0 else kernel


def _learned(learned: LearnedKernel | None, temperature: float | None) -> Kernel:
    if learned is None:
        return Cosine(0.5 if temperature is None else temperature)
    if temperature is not None:
        raise ValueError(
            "give the temperature to the learned kernel (e.g. Cosine(temperature=...)), "
            "not to the loss, when you pass learned=..."
        )
    return learned


def _is_softmax(kernel: Kernel) -> bool:
    """Whether ``log q`` of ``kernel`` is ``log_softmax(scores / tau)`` over the allowed
    candidates (as :meth:`~rkdo.kernels.LearnedKernel.log_probs` computes it)."""
    kind = type(kernel)
    return (isinstance(kernel, LearnedKernel) and kind.log_probs is LearnedKernel.log_probs
            and kind.log_prob is LearnedKernel.log_prob)


def _embeddings(nb: Neighbourhood) -> tuple[Tensor, Tensor]:
    """Anchors and candidates in float32 or wider (similarities are never made in half)."""
    if nb.anchors.dtype in (torch.float16, torch.bfloat16):
        return nb.anchors.float(), nb.candidates.float()
    return nb.anchors, nb.candidates


def _softmax_scores(kernel: Kernel, nb: Neighbourhood) -> Tensor | None:
    """The temperature-1 scores ``s`` of a softmax kernel (:func:`_is_softmax`), or None for
    any other kernel. With them the loss runs :func:`~rkdo.fused_scores.softmax_recursive_kl`
    from the scores."""
    if not _is_softmax(kernel):
        return None
    anchors, candidates = _embeddings(nb)
    with torch.autocast(device_type=anchors.device.type, enabled=False):
        return kernel.scores(anchors, candidates)


def _inner_products(anchors: Tensor, candidates: Tensor) -> Tensor:
    return anchors @ candidates.T


def _base_name(kernel: Kernel) -> str:
    while isinstance(kernel, Debiased):
        kernel = kernel.base
    return type(kernel).__name__


def _check_streaming(streaming: bool | None, supervisory: Kernel, learned: Kernel) -> bool | None:
    if streaming not in (None, True, False):
        raise ValueError(f"streaming must be None (automatic), True or False, got {streaming!r}")
    if streaming and not (_is_softmax(learned) and SameFactTarget.supports(supervisory)):
        raise ValueError(
            f"streaming=True needs a learned kernel that is a softmax of scores (Cosine, "
            f"GaussianEmbedding, StudentT) and a supervisory kernel of equal facts "
            f"(Augmentation, SameLabel, CoMembership, SameAttribute, any .leak()), got "
            f"{type(learned).__name__} and {_base_name(supervisory)}; pass streaming=None "
            "to stream only where the kernels allow it")
    return streaming


class _NeighbourhoodLoss(nn.Module):
    """Shared plumbing: arrange the views, then compare kernels."""

    supervisory: Kernel
    learned: Kernel
    form: str
    gather_distributed: bool
    streaming: bool | None

    def streamed(self, nb: Neighbourhood, temperatures: list[float], alpha: float,
                 detach_teacher: bool) -> Tensor | None:
        """The loss by :func:`~rkdo.streaming.streaming_recursive_kl` where ``streaming``
        asks for it and the kernels allow it, else None."""
        large = nb.anchors.shape[0] * nb.candidates.shape[0] > STREAMING_ABOVE
        if self.streaming is False or (self.streaming is None and not large):
            return None
        target = SameFactTarget.of(self.supervisory, nb)
        if target is None or not _is_softmax(self.learned):
            return None
        anchors, candidates = _embeddings(nb)
        scores = self.learned.scores
        if type(self.learned) is Cosine and self.learned.normalize:
            # normalised once here, not once per block inside the kernel's scores
            anchors, candidates = F.normalize(anchors, dim=-1), F.normalize(candidates, dim=-1)
            scores = _inner_products
        return streaming_recursive_kl(anchors, candidates, scores, target, temperatures, alpha,
                                      mask=nb.mask, detach_teacher=detach_teacher)

    def neighbourhood(
        self,
        z1: Tensor,
        z2: Tensor | None,
        ids: Tensor | None,
        labels: Tensor | None,
        inputs: Tensor | None,
        assignments: Tensor | None,
    ) -> Neighbourhood:
        return build_neighbourhood(
            z1,
            z2,
            form=self.form,
            ids=ids,
            labels=labels,
            inputs=inputs,
            assignments=assignments,
            gather_distributed=self.gather_distributed,
        )

    def forward(
        self,
        z1: Tensor,
        z2: Tensor | None = None,
        *,
        ids: Tensor | None = None,
        labels: Tensor | None = None,
        inputs: Tensor | None = None,
        assignments: Tensor | None = None,
    ) -> Tensor:
        """The loss for embeddings ``z1`` (and ``z2``), a scalar tensor."""
        nb = self.neighbourhood(z1, z2, ids, labels, inputs, assignments)
        return self.compute(nb)

    def compute(self, nb: Neighbourhood) -> Tensor:
        raise NotImplementedError

    def teacher_log_prob(self, nb: Neighbourhood) -> Tensor:
        """``log p`` of the target the student is finally compared with (for recording)."""
        raise NotImplementedError


class IConLoss(_NeighbourhoodLoss):
    """Static I-Con loss ``1/n sum_i KL(p(.|i) || q(.|i))``.

    Args:
        supervisory: target kernel ``p``; default :class:`~rkdo.kernels.Augmentation`
            (``p(0) = I`` over the batch in the pair form).
        learned: learned kernel ``q``; default :class:`~rkdo.kernels.Cosine` at ``temperature``.
        temperature: temperature of the default cosine kernel (0.5).
        debias: ``a`` in ``p <- (1 - a) p + a / N``, in [0, 1) (0.2, as the reference baseline).
        form: ``"pair"`` (view 1 anchors vs view 2 candidates, the reference's), ``"symmetric"``
            (NT-Xent's 2B x 2B with self-pairs masked) or ``"single"`` (one view, self masked).
        gather_distributed: compare local anchors with the candidates of every rank.
        streaming: ``None`` streams above ``STREAMING_ABOVE`` anchor-candidate pairs where the
            kernels allow it, ``True`` always, ``False`` never (see the module docstring).

    The reference notebooks' I-Con baseline is ``IConLoss()``.
    """

    def __init__(
        self,
        supervisory: Kernel | None = None,
        learned: LearnedKernel | None = None,
        *,
        temperature: float | None = None,
        debias: float = 0.2,
        form: str = "pair",
        gather_distributed: bool = False,
        streaming: bool | None = None,
    ) -> None:
        super().__init__()
        self.supervisory = _supervisory(supervisory, debias)
        self.learned = _learned(learned, temperature)
        self.form = check_form(form)
        self.gather_distributed = gather_distributed
        self.streaming = _check_streaming(streaming, self.supervisory, self.learned)

    def compute(self, nb: Neighbourhood) -> Tensor:
        tau = self.learned.temperature
        streamed = self.streamed(nb, [tau, tau], 0.0, False)
        if streamed is not None:
            return streamed
        log_teacher = self.supervisory.log_prob(nb)
        scores = None if log_teacher.requires_grad else _softmax_scores(self.learned, nb)
        if scores is not None:
            return softmax_mean_kl(log_teacher, scores, self.learned.temperature, mask=nb.mask)
        return mean_kl(log_teacher, self.learned.log_prob(nb))

    def teacher_log_prob(self, nb: Neighbourhood) -> Tensor:
        return self.supervisory.log_prob(nb)


class RKDOLoss(_NeighbourhoodLoss):
    """RKDO's in-step recursive loss (see the module docstring for the formula).

    Args:
        alpha: teacher update rate in [0, 1]; ``alpha = 0`` keeps ``p`` fixed (K copies of the
            I-Con term at the scheduled temperatures).
        depth: number of recursion steps ``K >= 1``.
        temperature: base temperature ``tau`` of the default cosine kernel (0.5).
        beta: temperature decay in [0, 1): ``tau_t = tau (1 - beta t / K)``.
        detach_teacher: stop the gradient through the teacher ``p(t)``.
        supervisory, learned: any kernel pair; default augmentation pairs and cosine similarity.
        debias: uniform leak of ``p(0)`` (0 in the reference's RKDO).
        form, gather_distributed, streaming: as in :class:`IConLoss`.
    """

    def __init__(
        self,
        alpha: float = 0.5,
        depth: int = 3,
        temperature: float | None = None,
        beta: float = 0.1,
        detach_teacher: bool = False,
        *,
        supervisory: Kernel | None = None,
        learned: LearnedKernel | None = None,
        debias: float = 0.0,
        form: str = "pair",
        gather_distributed: bool = False,
        streaming: bool | None = None,
    ) -> None:
        super().__init__()
        self.alpha = check_unit_interval("alpha", alpha)
        self.depth = check_int("depth", depth, low=1)
        self.beta = check_unit_interval("beta", beta, high_open=True)
        self.detach_teacher = bool(detach_teacher)
        self.supervisory = _supervisory(supervisory, debias)
        self.learned = _learned(learned, temperature)
        self.form = check_form(form)
        self.gather_distributed = gather_distributed
        self.streaming = _check_streaming(streaming, self.supervisory, self.learned)

    def temperatures(self) -> list[float]:
        """``tau_0 .. tau_K``: the temperature of ``q(t)`` at each recursion step."""
        return temperature_schedule(self.learned.temperature, self.beta, self.depth)

    def compute(self, nb: Neighbourhood) -> Tensor:
        streamed = self.streamed(nb, self.temperatures(), self.alpha, self.detach_teacher)
        if streamed is not None:
            return streamed
        log_teacher = self.supervisory.log_prob(nb)
        scores = None if log_teacher.requires_grad else _softmax_scores(self.learned, nb)
        if scores is not None:
            return softmax_recursive_kl(log_teacher, scores, self.temperatures(), self.alpha,
                                        mask=nb.mask, detach_teacher=self.detach_teacher)
        students = self.learned.log_probs(nb, self.temperatures())
        return recursive_kl(log_teacher, students, self.alpha, detach_teacher=self.detach_teacher)

    def teacher_log_prob(self, nb: Neighbourhood) -> Tensor:
        """``log p(K)``, the teacher after the K in-step mixing steps."""
        log_p = self.supervisory.log_prob(nb)
        for tau in self.temperatures()[:-1]:
            log_p = log_mix(log_p, self.learned.log_prob(nb, tau), self.alpha)
        return log_p

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha}, depth={self.depth}, beta={self.beta}, "
            f"detach_teacher={self.detach_teacher}, form={self.form!r}, "
            f"streaming={self.streaming}"
        )

