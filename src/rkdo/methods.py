"""Presets: the methods of I-Con's periodic table that our kernels give, static or recursive.

Each method is a (supervisory ``p``, learned ``q``) pair, a form and what it needs per sample:

============  ===========================  ==========================  ========  ==========
name          p (supervisory)              q (learned)                 form      needs
============  ===========================  ==========================  ========  ==========
simclr        augmentation pairs           cosine / tau                pair      --
icon          augmentation pairs, leak .2  cosine / tau                pair      --
rkdo          = simclr, recursive          cosine / tau_t              pair      --
supcon        same label                   cosine / tau                pair      labels
sne           Gaussian, perplexity         Gaussian on embeddings      single    inputs
tsne          Gaussian, perplexity         Student-t                   single    inputs
cluster       augmentation pairs           cluster (prototypes)        pair      --
kmeans        Gaussian, perplexity         cluster (prototypes)        single    inputs
============  ===========================  ==========================  ========  ==========

``get(name, recursive=True)`` wraps any of them in RKDO's in-step recursion; ``debias=a`` leaks
``a`` of the target mass to the uniform distribution. ``icon`` and ``rkdo`` are the reference
notebooks' baseline and method with their exact hyper-parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rkdo.kernels import (
    Augmentation,
    Cluster,
    Cosine,
    GaussianEmbedding,
    GaussianInput,
    Kernel,
    LearnedKernel,
    SameLabel,
    StudentT,
)
from rkdo.losses import IConLoss, RKDOLoss

__all__ = ["Method", "METHODS", "names", "get", "describe"]


@dataclass(frozen=True)
class Method:
    """One entry of the table: how to build its kernels and what it needs."""

    name: str
    summary: str
    supervisory: Callable[[dict[str, Any]], Kernel]
    learned: Callable[[dict[str, Any]], LearnedKernel]
    form: str = "pair"
    debias: float = 0.0
    recursive: bool = False
    needs: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


def _augmentation(_: dict[str, Any]) -> Kernel:
    return Augmentation()


def _labels(_: dict[str, Any]) -> Kernel:
    return SameLabel()


def _gaussian_input(o: dict[str, Any]) -> Kernel:
    return GaussianInput(o.get("perplexity", 30.0))


def _cosine(o: dict[str, Any]) -> LearnedKernel:
    return Cosine(o.get("temperature", 0.5))


def _gaussian_embedding(o: dict[str, Any]) -> LearnedKernel:
    return GaussianEmbedding(o.get("temperature", 1.0))


def _student_t(o: dict[str, Any]) -> LearnedKernel:
    return StudentT(o.get("dof", 1.0), o.get("temperature", 1.0))


def _cluster(o: dict[str, Any]) -> LearnedKernel:
    if "dim" not in o:
        raise ValueError("the cluster kernel needs dim=<embedding dimension> (and n_clusters=...)")
    return Cluster(o.get("n_clusters", 10), o["dim"], o.get("temperature", 0.5))


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("simclr", "SimCLR / InfoNCE: augmentation pairs vs cosine softmax",
               _augmentation, _cosine, options=("temperature",)),
        Method("icon", "the reference notebooks' I-Con baseline: SimCLR with debias 0.2",
               _augmentation, _cosine, debias=0.2, options=("temperature",)),
        Method("rkdo", "the reference notebooks' RKDO: SimCLR made recursive (depth 3)",
               _augmentation, _cosine, recursive=True, options=("temperature",)),
        Method("supcon", "SupCon: same-label targets vs cosine softmax",
               _labels, _cosine, needs=("labels",), options=("temperature",)),
        Method("sne", "SNE: perplexity-calibrated Gaussian on inputs vs Gaussian on embeddings",
               _gaussian_input, _gaussian_embedding, form="single", needs=("inputs",),
               options=("perplexity", "temperature")),
        Method("tsne", "t-SNE (conditional): Gaussian on inputs vs Student-t on embeddings",
               _gaussian_input, _student_t, form="single", needs=("inputs",),
               options=("perplexity", "dof", "temperature")),
        Method("cluster", "I-Con contrastive clustering: augmentation pairs vs cluster kernel",
               _augmentation, _cluster, options=("n_clusters", "dim", "temperature")),
        Method("kmeans", "I-Con k-means: Gaussian on inputs vs cluster kernel",
               _gaussian_input, _cluster, form="single", needs=("inputs",),
               options=("perplexity", "n_clusters", "dim", "temperature")),
    )
}

_RECURSION_OPTIONS = ("alpha", "depth", "beta", "detach_teacher")


def names() -> list[str]:
    """All preset names."""
    return list(METHODS)


def describe() -> str:
    """A one-line-per-method summary (used by ``rkdo --help``)."""
    return "\n".join(f"{m.name:8s} {m.summary}" for m in METHODS.values())


def get(
    name: str,
    *,
    recursive: bool | None = None,
    debias: float | None = None,
    form: str | None = None,
    gather_distributed: bool = False,
    **options: Any,
) -> IConLoss | RKDOLoss:
    """Build the loss of preset ``name``.

    Args:
        name: one of :func:`names`.
        recursive: wrap in RKDO's in-step recursion (default: the preset's own choice; only
            ``rkdo`` is recursive by default).
        debias: uniform leak of the target (default: the preset's, 0.2 for ``icon``, else 0).
        form: override the preset's form (``pair``, ``symmetric``, ``single``).
        gather_distributed: global negatives under ``torch.distributed``.
        **options: kernel options (``temperature``, ``perplexity``, ``dof``, ``n_clusters``,
            ``dim``) and, when recursive, ``alpha``, ``depth``, ``beta``, ``detach_teacher``.

    Example: ``get("supcon", recursive=True, alpha=0.3)``.
    """
    try:
        method = METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}") from None
    recursive = method.recursive if recursive is None else recursive
    allowed = set(method.options) | {"dim"} | (set(_RECURSION_OPTIONS) if recursive else set())
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(
            f"method {name!r} does not take {', '.join(unknown)}; it takes "
            f"{', '.join(sorted(allowed))}"
        )
    kernel_options = {k: v for k, v in options.items() if k not in _RECURSION_OPTIONS}
    supervisory = method.supervisory(kernel_options)
    learned = method.learned(kernel_options)
    common = dict(
        supervisory=supervisory,
        learned=learned,
        debias=method.debias if debias is None else debias,
        form=method.form if form is None else form,
        gather_distributed=gather_distributed,
    )
    if recursive:
        recursion = {k: v for k, v in options.items() if k in _RECURSION_OPTIONS}
        return RKDOLoss(**recursion, **common)
    return IConLoss(**common)
