"""What every rkdo figure shares, wherever it is drawn (``rkdo.viz``, ``rkdo.bench.report``):
its resolution and its type sizes.

A page column is ~3.5 inches wide, so at :data:`DPI` dots per inch and :data:`TYPE_SIZES`
(8-9 pt) a figure stays readable at column width. Plain values, no matplotlib import: the two
drawing layers are peers and may not import each other, so the one copy lives below both.
"""

from __future__ import annotations

__all__ = ["DPI", "TYPE_SIZES"]

DPI = 200.0
"""Dots per inch of a saved figure."""
TYPE_SIZES = {"font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "legend.fontsize": 8,
              "xtick.labelsize": 8, "ytick.labelsize": 8}
"""Type sizes in points (matplotlib rc parameters), for ``rc_context``."""
