"""The losses of the methods in :mod:`rkdo.method_table`: :func:`get` builds a preset's loss.

The table (names, forms, needs, options) is declared in :mod:`rkdo.method_table`, without
torch; :data:`METHODS`, :class:`Method`, :func:`names` and :func:`describe` are its own, here as
well. This module holds one builder per kernel name (:data:`SUPERVISORY`, :data:`LEARNED`) and
per outside method (:data:`OUTSIDE`).

The call a method's loss takes follows from its form and needs: ``loss(z1, z2)`` (pair,
symmetric), ``loss(z1, z2, labels=y)`` (needs labels), ``loss(z, inputs=x)`` (single, needs
inputs). ``simclr`` is SimCLR's NT-Xent over the 2B views (symmetric: equal to lightly's
``NTXentLoss``); ``get("simclr", form="pair")`` gives view 1 against view 2 only.
``get(name, recursive=True)`` wraps any kernel pair in RKDO's in-step recursion; ``debias=a``
leaks ``a`` of the target mass to the uniform distribution. ``icon`` and ``rkdo`` are the
reference notebooks' baseline and method with their exact hyper-parameters.
"""

from __future__ import annotations

from collections.abc import Callable
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
from rkdo.method_table import METHODS, Method, describe, names

__all__ = ["Method", "METHODS", "names", "get", "describe", "SUPERVISORY", "LEARNED", "OUTSIDE"]


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


SUPERVISORY: dict[str, Callable[[dict[str, Any]], Kernel]] = {
    "augmentation": _augmentation, "labels": _labels, "gaussian-input": _gaussian_input}
"""The supervisory kernel of each name a table entry's ``supervisory`` may give."""
LEARNED: dict[str, Callable[[dict[str, Any]], LearnedKernel]] = {
    "cosine": _cosine, "gaussian-embedding": _gaussian_embedding, "student-t": _student_t,
    "cluster": _cluster}
"""The learned kernel of each name a table entry's ``learned`` may give."""
OUTSIDE: dict[str, Callable[[dict[str, Any], bool], nn.Module]] = {
    "lightly-ntxent": _lightly, "ce": _classifier(None),
    "ce-bootstrap-soft": _classifier("soft"), "ce-bootstrap-hard": _classifier("hard"),
    "supcon-ema": _ema_teacher}
"""The loss of each method that is not a kernel pair, from ``(options, gather_distributed)``."""

_RECURSION_OPTIONS = ("alpha", "depth", "beta", "detach_teacher")


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
    if method.outside:
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
    supervisory = SUPERVISORY[method.supervisory](kernel_options)
    learned = LEARNED[method.learned](kernel_options)
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
    return OUTSIDE[method.name](options, gather_distributed)
