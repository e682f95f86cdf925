"""Pictures of neighbourhood-KL learning: the RKDO kaleidoscope, training curves, embeddings.

- :mod:`rkdo.viz.simulate`: a small deterministic run of the recursion, as teacher and student
  fields over time.
- :mod:`rkdo.viz.layout`: where the kaleidoscope puts nodes, edges and petals (numpy only).
- :mod:`rkdo.viz.kaleidoscope`: the drawing, one frame at a time, and ``Kaleidoscope.save``.
- :mod:`rkdo.viz.encode`: frames to an animated GIF (Pillow) or MP4 (``ffmpeg``).
- :mod:`rkdo.viz.plots`: loss and evaluation curves of runs.
- :mod:`rkdo.viz.maps`: 2-D maps of learned features (PCA, exact t-SNE), scattered by class.
- :mod:`rkdo.viz.figures`: what the static figures share (resolution, type sizes, atomic save).

The fields themselves are :mod:`rkdo.fields`; the ``rkdo viz`` command is :mod:`rkdo.cli.viz`.
Matplotlib is imported only inside the functions that draw, so importing this package stays
light.
"""

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
