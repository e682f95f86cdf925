"""Neighbourhood kernels: the supervisory ``p(j|i)`` and the learned ``q(j|i)`` of I-Con.

Each kernel is a small ``nn.Module`` whose ``log_prob(nb)`` returns a ``(B, N)`` matrix of
row-normalised log-probabilities over the candidates of a :class:`~rkdo.neighbourhood.Neighbourhood`
(``-inf`` where a candidate is excluded); ``forward`` returns the probabilities. Kernels compose:
``kernel.leak(a)`` is the debiased kernel ``(1 - a) p + a / N``.

Supervisory kernels (read per-sample facts, carry no gradient):

- :class:`SameAttribute` / :class:`Augmentation` / :class:`SameLabel` / :class:`CoMembership`:
  ``p(j|i) ∝ 1[c(i) = c(j)]`` for sample ids (SimCLR), labels (SupCon), cluster assignments.
- :class:`GaussianInput`: ``p(j|i) ∝ exp(-||x_i - x_j||^2 / (2 sigma_i^2))`` with ``sigma_i``
  found by bisection so that ``exp(H(p(.|i))) = perplexity`` (SNE / t-SNE;
  :func:`rkdo.calibration.calibrate_gaussian`, also exported here).
- :class:`KNNGraph`: ``p(j|i) = 1/k`` for the ``k`` nearest inputs of ``i``.

Learned kernels (differentiable in the embeddings, with a temperature ``tau``):

- :class:`Cosine`: ``q(j|i) ∝ exp(cos(z_i, z_j) / tau)`` (SimCLR / InfoNCE / SupCon).
- :class:`GaussianEmbedding`: ``q(j|i) ∝ exp(-||z_i - z_j||^2 / tau)`` (SNE).
- :class:`StudentT`: ``q(j|i) ∝ (1 + ||z_i - z_j||^2 / nu)^(-(nu + 1) / 2)`` raised to ``1/tau``
  (t-SNE at ``nu = 1, tau = 1``).
- :class:`Cluster`: ``q(j|i) = sum_c f(c|i) f(c|j) / sum_k f(c|k)`` with
  ``f(c|i) = softmax_c(cos(z_i, mu_c) / tau)`` over learnable prototypes ``mu`` (I-Con's
  k-means-style clustering kernel).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rkdo._validation import check_int, check_positive, check_unit_interval
from rkdo.calibration import calibrate_gaussian
from rkdo.functional import log_debias, log_normalize
from rkdo.neighbourhood import Neighbourhood

__all__ = [
    "Kernel",
    "SupervisoryKernel",
    "LearnedKernel",
    "Debiased",
    "SameAttribute",
    "Augmentation",
    "SameLabel",
    "CoMembership",
    "GaussianInput",
    "KNNGraph",
    "Cosine",
    "GaussianEmbedding",
    "StudentT",
    "Cluster",
    "calibrate_gaussian",
]


class Kernel(nn.Module):
    """A neighbourhood distribution over the candidates of each anchor."""

    def log_prob(self, nb: Neighbourhood, *args, **kwargs) -> Tensor:
        """``(B, N)`` row-normalised log-probabilities; ``-inf`` for excluded candidates."""
        raise NotImplementedError

    def forward(self, nb: Neighbourhood, *args, **kwargs) -> Tensor:
        """``(B, N)`` row-stochastic probabilities, ``exp(log_prob(nb))``."""
        return self.log_prob(nb, *args, **kwargs).exp()

    def log_probs(self, nb: Neighbourhood, temperatures: Sequence[float]) -> list[Tensor]:
        """``log_prob(nb, tau)`` for each ``tau`` (RKDO's schedule); learned kernels override
        this to compute their similarities once for all temperatures."""
        return [self.log_prob(nb, tau) for tau in temperatures]

    def leak(self, amount: float) -> Debiased:
        """The debiased kernel ``(1 - amount) * self + amount * uniform``."""
        return Debiased(self, amount)


class SupervisoryKernel(Kernel):
    """A target distribution ``p`` built from per-sample facts; never differentiated."""


class LearnedKernel(Kernel):
    """A distribution ``q`` computed from embeddings, with a temperature ``tau``.

    ``log_prob(nb, temperature=None)`` uses ``self.temperature`` unless a value is given, which is
    how RKDO's temperature schedule evaluates the same kernel at ``tau_t``.
    """

    temperature: float

    def scores(self, anchors: Tensor, candidates: Tensor) -> Tensor:
        """Unnormalised log-scores at temperature 1, ``(B, N)``, in float32 or wider."""
        raise NotImplementedError

    def log_prob(self, nb: Neighbourhood, temperature: float | None = None) -> Tensor:
        return self.log_probs(nb, [self.temperature if temperature is None else temperature])[0]

    def log_probs(self, nb: Neighbourhood, temperatures: Sequence[float]) -> list[Tensor]:
        taus = [check_positive("temperature", tau) for tau in temperatures]
        anchors, candidates = nb.anchors, nb.candidates
        if anchors.dtype in (torch.float16, torch.bfloat16):
            anchors, candidates = anchors.float(), candidates.float()
        # Similarities are computed in full precision even under autocast: at tau = 0.02 a
        # bfloat16 cosine (8 bits of mantissa) would move logits by ~0.4.
        with torch.autocast(device_type=anchors.device.type, enabled=False):
            scores = self.scores(anchors, candidates)
            return [log_normalize(scores / tau, nb.mask) for tau in taus]


class Debiased(Kernel):
    """``p'(j|i) = (1 - a) p(j|i) + a / N_i``: mixes probabilities with the uniform distribution.

    ``N_i`` counts the candidates allowed by the neighbourhood's mask. ``amount`` in [0, 1).
    """

    def __init__(self, base: Kernel, amount: float) -> None:
        super().__init__()
        self.base = base
        self.amount = check_unit_interval("debias", amount, high_open=True)

    @property
    def temperature(self) -> float:
        return self.base.temperature  # type: ignore[return-value]

    def log_prob(self, nb: Neighbourhood, *args, **kwargs) -> Tensor:
        return log_debias(self.base.log_prob(nb, *args, **kwargs), self.amount, nb.mask)

    def log_probs(self, nb: Neighbourhood, temperatures: Sequence[float]) -> list[Tensor]:
        return [log_debias(log_p, self.amount, nb.mask)
                for log_p in self.base.log_probs(nb, temperatures)]

    def extra_repr(self) -> str:
        return f"amount={self.amount}"


class SameAttribute(SupervisoryKernel):
    """``p(j|i) ∝ 1[c(i) = c(j)]`` over allowed candidates, for the per-sample fact ``key``."""

    key = "ids"

    def __init__(self, key: str | None = None) -> None:
        super().__init__()
        if key is not None:
            self.key = key

    @torch.no_grad()
    def log_prob(self, nb: Neighbourhood) -> Tensor:
        fact = nb.fact(self.key)
        same = fact[nb.anchor_index][:, None] == fact[nb.candidate_index][None, :]
        if nb.mask is not None:
            same &= nb.mask
        dtype = torch.promote_types(nb.anchors.dtype, torch.float32)
        zeros = torch.zeros(same.shape, dtype=dtype, device=same.device)
        return log_normalize(zeros, same)

    def extra_repr(self) -> str:
        return f"key={self.key!r}"


class Augmentation(SameAttribute):
    """SimCLR's target: the other augmentations of the same image (equal sample ids)."""

    key = "ids"


class SameLabel(SameAttribute):
    """SupCon's target: every sample with the same class label."""

    key = "labels"


class CoMembership(SameAttribute):
    """Cluster co-membership: every sample assigned to the same cluster."""

    key = "assignments"


def _input_distances(nb: Neighbourhood) -> Tensor:
    inputs = nb.fact("inputs").flatten(1).to(torch.float64)
    return torch.cdist(inputs[nb.anchor_index], inputs[nb.candidate_index]).square()


def _allowed_counts(nb: Neighbourhood, shape: torch.Size) -> Tensor:
    if nb.mask is None:
        return torch.full(shape[:1], shape[1], device=nb.anchors.device)
    return nb.mask.sum(dim=-1)


class GaussianInput(SupervisoryKernel):
    """SNE's target: a Gaussian on input distances, width per row set by a perplexity.

    ``p(j|i) = exp(-||x_i - x_j||^2 / (2 sigma_i^2)) / sum_k exp(-||x_i - x_k||^2 / (2 sigma_i^2))``
    with ``sigma_i`` chosen so that ``exp(H(p(.|i))) = perplexity``; perplexity must lie in
    ``(1, N_i)`` where ``N_i`` is the number of allowed candidates.
    """

    def __init__(self, perplexity: float = 30.0) -> None:
        super().__init__()
        perplexity = float(perplexity)
        if not (perplexity > 1.0 and math.isfinite(perplexity)):
            raise ValueError(f"perplexity must be > 1, got {perplexity!r}")
        self.perplexity = perplexity

    @torch.no_grad()
    def log_prob(self, nb: Neighbourhood) -> Tensor:
        distances = _input_distances(nb)
        allowed = _allowed_counts(nb, distances.shape)
        smallest = int(allowed.min())
        if self.perplexity >= smallest:
            raise ValueError(
                f"perplexity must lie in (1, {smallest}) for this batch (each anchor has "
                f"{smallest} candidate neighbours), got {self.perplexity}; lower the perplexity "
                "or raise the batch size"
            )
        log_p = calibrate_gaussian(distances, self.perplexity, nb.mask)
        return log_p.to(torch.promote_types(nb.anchors.dtype, torch.float32))

    def extra_repr(self) -> str:
        return f"perplexity={self.perplexity}"


class KNNGraph(SupervisoryKernel):
    """``p(j|i) = 1/k`` for the ``k`` nearest allowed candidates of ``i`` in input space."""

    def __init__(self, k: int = 10) -> None:
        super().__init__()
        self.k = check_int("k", k, low=1)

    @torch.no_grad()
    def log_prob(self, nb: Neighbourhood) -> Tensor:
        distances = _input_distances(nb)
        allowed = _allowed_counts(nb, distances.shape)
        if self.k > int(allowed.min()):
            raise ValueError(
                f"k must lie in [1, {int(allowed.min())}] for this batch, got {self.k}; "
                "lower k or raise the batch size"
            )
        if nb.mask is not None:
            distances = distances.masked_fill(~nb.mask, float("inf"))
        nearest = distances.topk(self.k, dim=-1, largest=False).indices
        neighbour = torch.zeros_like(distances, dtype=torch.bool).scatter_(1, nearest, True)
        dtype = torch.promote_types(nb.anchors.dtype, torch.float32)
        return log_normalize(torch.zeros(neighbour.shape, dtype=dtype, device=neighbour.device),
                             neighbour)

    def extra_repr(self) -> str:
        return f"k={self.k}"


class Cosine(LearnedKernel):
    """``q(j|i) = softmax_j(cos(z_i, z_j) / tau)``, the Gaussian kernel on the unit sphere."""

    def __init__(self, temperature: float = 0.5, normalize: bool = True) -> None:
        super().__init__()
        self.temperature = check_positive("temperature", temperature)
        self.normalize = normalize

    def scores(self, anchors: Tensor, candidates: Tensor) -> Tensor:
        if self.normalize:
            anchors, candidates = F.normalize(anchors, dim=-1), F.normalize(candidates, dim=-1)
        return anchors @ candidates.T

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, normalize={self.normalize}"


def _sq_distances(anchors: Tensor, candidates: Tensor) -> Tensor:
    # |a|^2 + |c|^2 - 2 a.c, clamped: differentiable everywhere, unlike cdist at 0
    sq = (
        anchors.square().sum(-1, keepdim=True)
        + candidates.square().sum(-1)[None, :]
        - 2.0 * anchors @ candidates.T
    )
    return sq.clamp_min(0.0)


class GaussianEmbedding(LearnedKernel):
    """``q(j|i) = softmax_j(-||z_i - z_j||^2 / tau)`` (SNE's learned kernel)."""

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        self.temperature = check_positive("temperature", temperature)

    def scores(self, anchors: Tensor, candidates: Tensor) -> Tensor:
        return -_sq_distances(anchors, candidates)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"


class StudentT(LearnedKernel):
    """``q(j|i) ∝ (1 + ||z_i - z_j||^2 / nu)^(-(nu + 1) / (2 tau))`` (t-SNE: ``nu = tau = 1``)."""

    def __init__(self, dof: float = 1.0, temperature: float = 1.0) -> None:
        super().__init__()
        self.dof = check_positive("dof", dof)
        self.temperature = check_positive("temperature", temperature)

    def scores(self, anchors: Tensor, candidates: Tensor) -> Tensor:
        return -0.5 * (self.dof + 1.0) * torch.log1p(_sq_distances(anchors, candidates) / self.dof)

    def extra_repr(self) -> str:
        return f"dof={self.dof}, temperature={self.temperature}"


class Cluster(LearnedKernel):
    """I-Con's clustering kernel over ``n_clusters`` learnable prototypes.

    ``f(c|i) = softmax_c(cos(z_i, mu_c) / tau)``, ``q(j|i) = sum_c f(c|i) f(c|j) / sum_k f(c|k)``:
    ``i`` reaches ``j`` by picking a cluster, then a member of it in proportion to its
    responsibility. Rows sum to one by construction; with a mask they are renormalised. The
    prototypes are parameters of this module: give ``loss.parameters()`` to the optimiser.
    """

    def __init__(self, n_clusters: int, dim: int, temperature: float = 0.5) -> None:
        super().__init__()
        n_clusters = check_int("n_clusters", n_clusters, low=2)
        dim = check_int("dim", dim, low=1)
        self.temperature = check_positive("temperature", temperature)
        self.prototypes = nn.Parameter(F.normalize(torch.randn(n_clusters, dim), dim=-1))

    def _check_embeddings(self, z: Tensor) -> None:
        """Shape and device only (no synchronisation): the prototypes must meet ``z``."""
        n_clusters, dim = self.prototypes.shape
        if z.shape[-1] != dim:
            raise ValueError(
                f"the cluster kernel's prototypes have dimension {dim}, the embeddings "
                f"{z.shape[-1]}; build it with dim={z.shape[-1]}"
            )
        if z.device != self.prototypes.device:
            raise ValueError(
                f"the cluster kernel's prototypes are on {self.prototypes.device}, the "
                f"embeddings on {z.device}; move the loss with loss.to({str(z.device)!r})"
            )

    def responsibilities(self, z: Tensor, temperature: float | None = None) -> Tensor:
        """``log f(c|i)``, ``(B, C)``."""
        tau = self.temperature if temperature is None else temperature
        logits = F.normalize(z, dim=-1) @ F.normalize(self.prototypes.to(z.dtype), dim=-1).T
        return torch.log_softmax(logits / tau, dim=-1)

    def log_probs(self, nb: Neighbourhood, temperatures: Sequence[float]) -> list[Tensor]:
        # the temperature acts inside the responsibilities: nothing to share between them
        return [self.log_prob(nb, tau) for tau in temperatures]

    def log_prob(self, nb: Neighbourhood, temperature: float | None = None) -> Tensor:
        tau = self.temperature if temperature is None else check_positive(
            "temperature", temperature
        )
        self._check_embeddings(nb.anchors)
        dtype = torch.promote_types(nb.anchors.dtype, torch.float32)
        anchors, candidates = nb.anchors.to(dtype), nb.candidates.to(dtype)
        with torch.autocast(device_type=anchors.device.type, enabled=False):
            log_f_anchor = self.responsibilities(anchors, tau)
            log_f_candidate = self.responsibilities(candidates, tau)
            log_reach = log_f_candidate - torch.logsumexp(log_f_candidate, dim=0, keepdim=True)
            # log q_ij = logsumexp_c(log f(c|i) + log reach(j|c)) as one matmul: shift each
            # row's maximum out (exact, so no gradient needed through it) and multiply in
            # float64, where the shifted terms (>= exp(-4/tau)) cannot underflow for
            # tau > ~0.006; in float32 they underflow to log 0 already at tau = 0.02.
            a, b = log_f_anchor.double(), log_reach.double()
            shift_a = a.detach().amax(dim=-1, keepdim=True)
            shift_b = b.detach().amax(dim=-1, keepdim=True)
            log_q = torch.log((a - shift_a).exp() @ (b - shift_b).exp().T) + shift_a + shift_b.T
            return log_normalize(log_q.to(dtype), nb.mask)

    def extra_repr(self) -> str:
        n_clusters, dim = self.prototypes.shape
        return f"n_clusters={n_clusters}, dim={dim}, temperature={self.temperature}"
