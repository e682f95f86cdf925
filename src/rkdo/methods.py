"""Presets: the methods of I-Con's periodic table that our kernels give, static or recursive.

Each method is a (supervisory ``p``, learned ``q``) pair, a form and what it needs per sample:

==============  ===========================  ======================  =========  ======  ========
name            p (supervisory)              q (learned)             form       needs   temporal
==============  ===========================  ======================  =========  ======  ========
simclr          augmentation pairs           cosine / tau            symmetric  --      yes
icon            augmentation pairs, leak .2  cosine / tau            pair       --      yes
rkdo            = icon without leak, recur.  cosine / tau_t          pair       --      yes
supcon          same label                   cosine / tau            pair       labels  yes
sne             Gaussian, perplexity         Gaussian on embeddings  single     inputs  --
tsne            Gaussian, perplexity         Student-t               single     inputs  --
cluster         augmentation pairs           cluster (prototypes)    pair       --      --
kmeans          Gaussian, perplexity         cluster (prototypes)    single     inputs  --
lightly-ntxent  lightly's NTXentLoss (an outside baseline, :mod:`rkdo.baselines`)
ce, ce-boot...  a classifier head's cross-entropy, plain or bootstrapped (:mod:`rkdo.bootstrap`)
supcon-ema      SupCon with an EMA teacher network (:mod:`rkdo.ema_teacher`)
==============  ===========================  ======================  =========  ======  ========

The call a method's loss takes follows from its form and needs: ``loss(z1, z2)`` (pair,
symmetric), ``loss(z1, z2, labels=y)`` (needs labels), ``loss(z, inputs=x)`` (single, needs
inputs). ``simclr`` is SimCLR's NT-Xent over the 2B views (symmetric: equal to lightly's
``NTXentLoss``); ``get("simclr", form="pair")`` gives view 1 against view 2 only.
``get(name, recursive=True)`` wraps any kernel pair in RKDO's in-step recursion; ``debias=a``
leaks ``a`` of the target mass to the uniform distribution. ``icon`` and ``rkdo`` are the
reference notebooks' baseline and method with their exact hyper-parameters.

A :class:`Method` entry is all the trainer knows about a method: its kernels (or, for an outside
baseline, its ``build``), its form, what it needs per sample, which options it takes, and the
supervisory kind of the temporal teacher (``temporal``; ``None``: no temporal recursion).
Adding a method is adding an entry to :data:`METHODS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from rkdo.baselines import LightlyNTXent
from rkdo.bootstrap import ClassifierLoss
from rkdo.ema_teacher import EMATeacherLoss
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
    """One entry of the table: how to build its loss and what its loss needs.

    Attributes:
        name, summary: the preset's name and one line about it.
        supervisory, learned: build the kernels from the options (``None`` for ``build``).
        form: ``pair``, ``symmetric`` or ``single`` (:mod:`rkdo.neighbourhood`).
        debias: the default uniform leak of the target.
        recursive: in-step RKDO recursion by default.
        needs: per-sample facts the loss takes besides the embeddings (``labels``, ``inputs``,
            ``views``: both views' images, for a loss that runs its own teacher network).
        options: the keyword options :func:`get` accepts (kernel options, ``dim``).
        temporal: the temporal teacher's supervisory kind (``augmentation`` or ``labels``);
            ``None`` when the method has no temporal form.
        build: the loss of a method that is not a kernel pair, from ``(options,
            gather_distributed)``; such a method is never recursive, debiased or re-formed.
        outside: for those, what they are instead (``"is an outside baseline"``, ``"has its
            own teacher"``), as error messages say it; empty for the kernel pairs.
    """

    name: str
    summary: str
    supervisory: Callable[[dict[str, Any]], Kernel] | None = None
    learned: Callable[[dict[str, Any]], LearnedKernel] | None = None
    form: str = "pair"
    debias: float = 0.0
    recursive: bool = False
    needs: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    temporal: str | None = None
    build: Callable[[dict[str, Any], bool], nn.Module] | None = None
    outside: str = ""


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


def _lightly(o: dict[str, Any], gather_distributed: bool) -> nn.Module:
    return LightlyNTXent(o.get("temperature", 0.5), gather_distributed=gather_distributed)


def _classifier(mode: str | None) -> Callable[[dict[str, Any], bool], nn.Module]:
    """A classifier head's cross-entropy (:mod:`rkdo.bootstrap`), plain or bootstrapped with the
    head's own prediction (``alpha`` its weight); the head is made at ``attach``."""

    def build(o: dict[str, Any], _: bool) -> nn.Module:
        if "dim" not in o:
            raise ValueError("a classifier loss needs dim=<embedding dimension>")
        extra = {} if mode is None else {"alpha": o.get("alpha", 0.5), "mode": mode}
        return ClassifierLoss(o["dim"], temperature=o.get("temperature", 1.0), **extra)

    return build


def _ema_teacher(o: dict[str, Any], _: bool) -> nn.Module:
    return EMATeacherLoss(o.get("alpha", 0.5), o.get("momentum", 0.99), o.get("temperature", 0.5))


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("simclr", "SimCLR's NT-Xent: augmentation pairs vs cosine softmax, 2B views",
               _augmentation, _cosine, form="symmetric", options=("temperature",),
               temporal="augmentation"),
        Method("icon", "the reference notebooks' I-Con baseline: pair form, debias 0.2",
               _augmentation, _cosine, debias=0.2, options=("temperature",),
               temporal="augmentation"),
        Method("rkdo", "the reference notebooks' RKDO: the pair form made recursive (depth 3)",
               _augmentation, _cosine, recursive=True, options=("temperature",),
               temporal="augmentation"),
        Method("supcon", "SupCon: same-label targets vs cosine softmax",
               _labels, _cosine, needs=("labels",), options=("temperature",),
               temporal="labels"),
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
        Method("lightly-ntxent", "lightly's NTXentLoss, an outside baseline (rkdo[baselines])",
               options=("temperature",), build=_lightly, outside="is an outside baseline"),
        # the label-noise study's losses with their own teacher (they take labels)
        Method("ce", "cross-entropy of a linear classifier head on the embeddings",
               needs=("labels",), options=("dim", "temperature"), build=_classifier(None),
               outside="has its own teacher"),
        Method("ce-bootstrap-soft", "Reed et al.'s soft bootstrapping: target mixes the label "
               "and the head's prediction (alpha its weight)", needs=("labels",),
               options=("dim", "alpha", "temperature"), build=_classifier("soft"),
               outside="has its own teacher"),
        Method("ce-bootstrap-hard", "Reed et al.'s hard bootstrapping: target mixes the label "
               "and the head's argmax (alpha its weight)", needs=("labels",),
               options=("dim", "alpha", "temperature"), build=_classifier("hard"),
               outside="has its own teacher"),
        Method("supcon-ema", "SupCon with an EMA teacher network (alpha the teacher's weight)",
               needs=("labels", "views"), options=("alpha", "momentum", "temperature"),
               build=_ema_teacher, outside="has its own teacher"),
    )
}

_RECURSION_OPTIONS = ("alpha", "depth", "beta", "detach_teacher")


def names() -> list[str]:
    """All preset names."""
    return list(METHODS)


def describe() -> str:
    """A one-line-per-method summary (used by ``rkdo --help``)."""
    width = max(len(name) for name in METHODS)
    return "\n".join(f"{m.name:{width}s} {m.summary}" for m in METHODS.values())


def get(
    name: str,
    *,
    recursive: bool | None = None,
    debias: float | None = None,
    form: str | None = None,
    gather_distributed: bool = False,
    **options: Any,
) -> nn.Module:
    """Build the loss of preset ``name`` (an :class:`IConLoss` or :class:`RKDOLoss`, or an outside
    baseline's module).

    Args:
        name: one of :func:`names`.
        recursive: wrap in RKDO's in-step recursion (default: the preset's own choice; only
            ``rkdo`` is recursive by default).
        debias: uniform leak of the target (default: the preset's, 0.2 for ``icon``, else 0).
        form: override the preset's form (``pair``, ``symmetric``, ``single``).
        gather_distributed: global negatives under ``torch.distributed``.
        **options: kernel options (``temperature``, ``perplexity``, ``dof``, ``n_clusters``,
            ``dim``) and, when recursive, ``alpha``, ``depth``, ``beta``, ``detach_teacher``.

    Example: ``get("supcon", recursive=True, alpha=0.3)``; ``get("simclr", form="pair")``.
    """
    try:
        method = METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}") from None
    recursive = method.recursive if recursive is None else recursive
    if method.build is not None:
        return _outside(method, options, recursive, debias, form, gather_distributed)
    allowed = set(method.options) | {"dim"} | (set(_RECURSION_OPTIONS) if recursive else set())
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(
            f"method {name!r} does not take {', '.join(unknown)}; it takes "
            f"{', '.join(sorted(allowed))}"
        )
    kernel_options = {k: v for k, v in options.items() if k not in _RECURSION_OPTIONS}
    assert method.supervisory is not None and method.learned is not None
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


def _outside(method: Method, options: dict[str, Any], recursive: bool, debias: float | None,
             form: str | None, gather_distributed: bool) -> nn.Module:
    """The loss of a method that is not a kernel pair: its own options only, never recursive,
    debiased or re-formed."""
    changed = [what for what, given in (("recursive=True", recursive), ("debias", debias),
                                        ("form", form)) if given]
    unknown = sorted(set(options) - set(method.options))
    if changed or unknown:
        raise ValueError(
            f"method {method.name!r} {method.outside}, not a kernel pair: it takes only "
            f"{', '.join(method.options)} (drop {', '.join(changed + unknown)})")
    assert method.build is not None
    return method.build(options, gather_distributed)
