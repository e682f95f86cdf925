"""Which solver a neighbour embedding of ``n`` points uses, and what each solver supports.

- ``exact``: every pair, any objective and dimension; O(n^2) time and about ``128 n^2`` bytes,
  checked against the device's free memory before anything is allocated.
- ``fft``: t-SNE in 2-D only; a k-NN ``P`` with ``3 x perplexity`` neighbours and repulsion
  interpolated on a grid, O(n) per step.
- ``sampled``: InfoNCE and NEG (UMAP-like; NEG has no other solver) as free points in 2-D;
  positive pairs drawn from the k-NN ``P`` and uniform negatives, O(n) per epoch.
- ``auto``: exact up to ``EXACT_LIMIT`` points; above it fft for t-SNE in 2-D and sampled for
  InfoNCE in 2-D; always sampled for NEG.

A request a solver cannot serve is refused in one line that names the way out.
"""

from __future__ import annotations

import torch

from rkdo.estimators._memory import check_dense_fits

__all__ = ["EXACT_LIMIT", "choose_solver"]

EXACT_LIMIT = 1000


def _auto(objective: str, n: int, n_components: int) -> str:
    small = n <= EXACT_LIMIT or objective != "tsne" or n_components != 2
    method = "exact" if small else "fft"
    if objective == "neg" or (objective == "infonce" and n > EXACT_LIMIT and n_components == 2):
        method = "sampled"
    return method


def choose_solver(method: str, objective: str, n: int, *, n_components: int, parametric: bool,
                  device: torch.device) -> str:
    """The solver of ``method`` (``"auto"`` resolved) for ``n`` points, or a ``ValueError``."""
    if method == "auto":
        method = _auto(objective, n, n_components)
    if (method == "sampled" and objective not in ("infonce", "neg")) or (
            objective == "neg" and method != "sampled"):
        raise ValueError("method='sampled' is for objective='infonce' or 'neg', and 'neg' "
                         "has no other method; use method='auto'")
    if method == "sampled" and (n_components != 2 or parametric):
        raise ValueError("method='sampled' embeds free points in 2-D only; "
                         "use n_components=2 and parametric=False")
    if method == "fft" and (objective != "tsne" or n_components != 2):
        raise ValueError("method='fft' supports objective='tsne' with n_components=2 only; "
                         "use method='exact'")
    if method == "exact":
        way_out = {"tsne": "use method='fft' (t-SNE in 2-D) or fewer points",
                   "infonce": "use method='sampled' (InfoNCE in 2-D) or fewer points"}.get(
            objective, "use objective='tsne' with method='fft', or fewer points")
        check_dense_fits(n, device, f"method='exact' (objective={objective!r})", way_out)
    return method
