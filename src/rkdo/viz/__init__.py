"""Pictures of neighbourhood-KL learning: the RKDO kaleidoscope, training curves, embeddings.

- :mod:`rkdo.viz.simulate`: a small deterministic run of the recursion, as teacher and student
  fields over time.
- :mod:`rkdo.viz.layout`: where the kaleidoscope puts nodes, edges and petals (numpy only).
- :mod:`rkdo.viz.kaleidoscope`: the drawing, one frame at a time, and ``Kaleidoscope.save``.
- :mod:`rkdo.viz.encode`: frames to an animated GIF (Pillow) or MP4 (``ffmpeg``).
- :mod:`rkdo.viz.plots`: loss and evaluation curves of runs.
- :mod:`rkdo.viz.maps`: 2-D maps of learned features (PCA, exact t-SNE), scattered by class.
- :mod:`rkdo.viz.figures`: what the static figures share (a canvas, an atomic save); their
  resolution and type sizes are :mod:`rkdo._figure_style`, shared with the benchmark report.

The fields themselves are :mod:`rkdo.fields`; the ``rkdo viz`` command is :mod:`rkdo.cli.viz`.
Matplotlib is imported only inside the functions that draw, and the names below load on first
use (PEP 562), so importing this package, or its light modules (``rkdo.viz.figures``), loads
neither torch nor matplotlib.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rkdo.viz.encode import save_frames
    from rkdo.viz.kaleidoscope import Kaleidoscope, Rendering
    from rkdo.viz.layout import Layout
    from rkdo.viz.maps import embed_2d, plot_embedding, plot_run_embedding
    from rkdo.viz.plots import plot_curves, read_metrics
    from rkdo.viz.simulate import Simulation, simulate

__all__ = [
    "Kaleidoscope",
    "Layout",
    "Rendering",
    "Simulation",
    "embed_2d",
    "plot_curves",
    "plot_embedding",
    "plot_run_embedding",
    "read_metrics",
    "save_frames",
    "simulate",
]

#: The module that defines each name of the package's face.
_HOMES = {
    "save_frames": "encode", "Kaleidoscope": "kaleidoscope", "Rendering": "kaleidoscope",
    "Layout": "layout", "embed_2d": "maps", "plot_embedding": "maps",
    "plot_run_embedding": "maps", "plot_curves": "plots", "read_metrics": "plots",
    "Simulation": "simulate", "simulate": "simulate",
}


def __getattr__(name: str) -> Any:
    """Load a name of the package's face on first use (``rkdo.viz.plot_curves``, ...)."""
    if name in _HOMES:
        return getattr(importlib.import_module(f"rkdo.viz.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'rkdo.viz' has no attribute {name!r}")


class _Face(types.ModuleType):
    """The package, whose face names are not replaced by a submodule of the same name:
    importing ``rkdo.viz.simulate`` (the module) leaves ``rkdo.viz.simulate`` the function."""

    def __setattr__(self, name: str, value: Any) -> None:
        if not (name in _HOMES and isinstance(value, types.ModuleType)):
            super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Face


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
