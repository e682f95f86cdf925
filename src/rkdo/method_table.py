"""The methods of I-Con's periodic table that our kernels give, static or recursive, declared.

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

A :class:`Method` entry is all the trainer knows about a method: its kernels by name (or, for an
outside baseline, none), its form, what it needs per sample, which options it takes, and the
supervisory kind of the temporal teacher (``temporal``; ``None``: no temporal recursion). This
module only declares, without torch: ``rkdo train --help`` lists the methods from it, and
:mod:`rkdo.methods` builds their losses (:func:`rkdo.methods.get`, with one builder per kernel
name and per outside method). Adding a method is adding an entry to :data:`METHODS` (and, for a
new kernel or an outside loss, its builder in :mod:`rkdo.methods`; a test checks every entry
has them).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Method", "METHODS", "names", "describe"]


@dataclass(frozen=True)
class Method:
    """One entry of the table: what its loss is made of and what it needs.

    Attributes:
        name, summary: the preset's name and one line about it.
        supervisory, learned: the names of its kernels (``None`` for an outside method):
            ``augmentation``, ``labels``, ``gaussian-input``; ``cosine``,
            ``gaussian-embedding``, ``student-t``, ``cluster``.
        form: ``pair``, ``symmetric`` or ``single`` (:mod:`rkdo.neighbourhood`).
        debias: the default uniform leak of the target.
        recursive: in-step RKDO recursion by default.
        needs: per-sample facts the loss takes besides the embeddings (``labels``, ``inputs``,
            ``views``: both views' images, for a loss that runs its own teacher network).
        options: the keyword options :func:`rkdo.methods.get` accepts (kernel options, ``dim``).
        temporal: the temporal teacher's supervisory kind (``augmentation`` or ``labels``);
            ``None`` when the method has no temporal form.
        outside: for a method that is not a kernel pair (its loss built whole, never recursive,
            debiased or re-formed), what it is instead (``"is an outside baseline"``, ``"has its
            own teacher"``), as error messages say it; empty for the kernel pairs.
    """

    name: str
    summary: str
    supervisory: str | None = None
    learned: str | None = None
    form: str = "pair"
    debias: float = 0.0
    recursive: bool = False
    needs: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    temporal: str | None = None
    outside: str = ""


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("simclr", "SimCLR's NT-Xent: augmentation pairs vs cosine softmax, 2B views",
               "augmentation", "cosine", form="symmetric", options=("temperature",),
               temporal="augmentation"),
        Method("icon", "the reference notebooks' I-Con baseline: pair form, debias 0.2",
               "augmentation", "cosine", debias=0.2, options=("temperature",),
               temporal="augmentation"),
        Method("rkdo", "the reference notebooks' RKDO: the pair form made recursive (depth 3)",
               "augmentation", "cosine", recursive=True, options=("temperature",),
               temporal="augmentation"),
        Method("supcon", "SupCon: same-label targets vs cosine softmax",
               "labels", "cosine", needs=("labels",), options=("temperature",),
               temporal="labels"),
        Method("sne", "SNE: perplexity-calibrated Gaussian on inputs vs Gaussian on embeddings",
               "gaussian-input", "gaussian-embedding", form="single", needs=("inputs",),
               options=("perplexity", "temperature")),
        Method("tsne", "t-SNE (conditional): Gaussian on inputs vs Student-t on embeddings",
               "gaussian-input", "student-t", form="single", needs=("inputs",),
               options=("perplexity", "dof", "temperature")),
        Method("cluster", "I-Con contrastive clustering: augmentation pairs vs cluster kernel",
               "augmentation", "cluster", options=("n_clusters", "dim", "temperature")),
        Method("kmeans", "I-Con k-means: Gaussian on inputs vs cluster kernel",
               "gaussian-input", "cluster", form="single", needs=("inputs",),
               options=("perplexity", "n_clusters", "dim", "temperature")),
        Method("lightly-ntxent", "lightly's NTXentLoss, an outside baseline (rkdo[baselines])",
               options=("temperature",), outside="is an outside baseline"),
        # the label-noise study's losses with their own teacher (they take labels)
        Method("ce", "cross-entropy of a linear classifier head on the embeddings",
               needs=("labels",), options=("dim", "temperature"),
               outside="has its own teacher"),
        Method("ce-bootstrap-soft", "Reed et al.'s soft bootstrapping: target mixes the label "
               "and the head's prediction (alpha its weight)", needs=("labels",),
               options=("dim", "alpha", "temperature"), outside="has its own teacher"),
        Method("ce-bootstrap-hard", "Reed et al.'s hard bootstrapping: target mixes the label "
               "and the head's argmax (alpha its weight)", needs=("labels",),
               options=("dim", "alpha", "temperature"), outside="has its own teacher"),
        Method("supcon-ema", "SupCon with an EMA teacher network (alpha the teacher's weight)",
               needs=("labels", "views"), options=("alpha", "momentum", "temperature"),
               outside="has its own teacher"),
    )
}


def names() -> list[str]:
    """All preset names."""
    return list(METHODS)


def describe() -> str:
    """A one-line-per-method summary (used by ``rkdo train --help``)."""
    width = max(len(name) for name in METHODS)
    return "\n".join(f"{m.name:{width}s} {m.summary}" for m in METHODS.values())
