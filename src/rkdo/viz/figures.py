"""The common ground of rkdo's static figures: a canvas and an atomic save.

Figures use matplotlib's object API (``Figure``, never ``pyplot``), imported when one is drawn,
with ``constrained`` layout; they are written atomically, in the format of the file's suffix,
at the resolution and type sizes of :mod:`rkdo._figure_style` (shared with the benchmark
report's figures). :mod:`rkdo.viz.plots` (curves) and :mod:`rkdo.viz.maps` (2-D maps) draw on
it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rkdo._io import atomic_writer

__all__ = ["new_figure", "save_figure"]


def new_figure(width: float, height: float, dpi: float) -> Any:
    """A ``width`` x ``height`` inch ``Figure`` on an Agg canvas, constrained layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Any, out: str | Path) -> Path:
    """Save ``figure`` atomically, in the format of ``out``'s suffix (PNG without one)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    image_format = out.suffix.lstrip(".").lower() or "png"
    return atomic_writer(out, lambda tmp: figure.savefig(tmp, format=image_format))
