"""The RKDO kaleidoscope: teacher and student neighbourhood fields drawn as an animated star graph.

Each frame shows ``n`` anchors on a circle (geometry: :mod:`rkdo.viz.layout`). In the student
panel the edge ``i -> j`` has line width proportional to ``q(j|i, j != i)`` (``p(j|i, j != i)``
in the teacher panel of the split view) and the colour of its KL term
``p log(p / q)`` on a diverging colormap: red where the teacher puts more mass than the student,
blue where less. A node's area grows with the mass on the anchor itself, ``q(i|i)`` (student
panel) or ``p(i|i)`` (teacher panel): where a trained teacher and student differ most. A large
recording draws the most-differing anchors and only each node's heaviest edges. In
each node's petal the red dot is the teacher ``p(.|i)``, the blue dot the student ``q(.|i)``
(restricted to the three petal neighbours), a dashed line joins them, and from the student dot
a purple arrow shows ``p - q`` and a green one the natural direction ``F_q^-1 (p - q)``. The
diagonal ``p(i|i), q(i|i)`` (an anchor with its own other view, in the pair form) is the nodes'
size, not an edge.

The figure is built once with matplotlib's object API (``Figure`` on an Agg canvas, never
``pyplot``) and only the artists that change are redrawn for each frame over a cached
background (blitting; edges are one ``LineCollection`` per panel), so 50 frames render in
seconds. :meth:`Kaleidoscope.save` renders every frame into a GIF or MP4
(:func:`rkdo.viz.encode.save_frames`). Matplotlib is imported when a figure is built.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rkdo._validation import check_choice, check_positive
from rkdo.fields import Fields
from rkdo.viz.encode import save_frames
from rkdo.viz.layout import Layout

__all__ = [
    "THEMES",
    "TEACHER_COLOR",
    "STUDENT_COLOR",
    "EUCLIDEAN_COLOR",
    "NATURAL_COLOR",
    "Kaleidoscope",
    "Rendering",
]

TEACHER_COLOR = "#ff3b30"
STUDENT_COLOR = "#2f80ff"
EUCLIDEAN_COLOR = "#b45cff"
NATURAL_COLOR = "#22c55e"
_DYNAMIC = ("edges", "link", "euclidean", "natural", "p", "q", "nodes")  # in drawing order
_NODE_AREA = (40.0, 500.0)  # points^2 at self mass 0, and added per unit of self mass

THEMES: dict[str, dict[str, str]] = {
    "dark": {"background": "#0d1117", "foreground": "#e6edf3", "petal": "#1c2430",
             "petal_edge": "#6b7687", "node": "#f5f5f5"},
    "light": {"background": "#ffffff", "foreground": "#1f2328", "petal": "#eef0f4",
              "petal_edge": "#8a93a3", "node": "#2b2b2b"},
}


def _check_cmap(name: str) -> None:
    from matplotlib import colormaps

    if name not in colormaps:
        diverging = [c for c in ("coolwarm", "RdBu_r", "bwr", "PiYG", "PuOr", "seismic")
                     if c in colormaps]
        raise ValueError(f"cmap {name!r} is not a matplotlib colormap; use a diverging one "
                         f"such as {', '.join(diverging)}")


class Kaleidoscope:
    """A reusable figure that draws one frame of the kaleidoscope at a time.

    Args:
        fields: the teacher and student fields (:class:`rkdo.fields.Fields`).
        nodes: number of anchors drawn (default: all, at most 12).
        split: student panel (left) and teacher panel (right) side by side; otherwise the student.
        theme: ``"dark"`` or ``"light"``.
        dpi: resolution; the image is ``figsize * dpi`` pixels.
        frames: draw only this many frames, evenly spaced (default: all).
        cmap: colormap of the KL terms (a diverging one: the terms have both signs).
        arrow_length: the length (in petal sizes) that arrows approach for large displacements.
        max_width: line width (points) of the heaviest edge.
        title: text at the top of the figure.

    The geometry is :attr:`layout` (:class:`rkdo.viz.layout.Layout`).
    """

    def __init__(
        self,
        fields: Fields,
        *,
        nodes: int | None = None,
        split: bool = False,
        theme: str = "dark",
        dpi: float = 100.0,
        frames: int | None = None,
        cmap: str = "coolwarm",
        arrow_length: float = 0.6,
        max_width: float = 5.0,
        title: str = "RKDO kaleidoscope",
    ) -> None:
        self.theme = THEMES[check_choice("theme", theme, tuple(THEMES))]
        _check_cmap(cmap)
        self.dpi = check_positive("dpi", dpi)
        self.split = bool(split)
        self.max_width = float(max_width)
        self.title = title
        self.layout = Layout.from_fields(fields, nodes=nodes, frames=frames,
                                         arrow_length=arrow_length)
        widths = [self.layout.edge_student] + ([self.layout.edge_teacher] if self.split else [])
        top = max(float(w.max()) for w in widths)
        self.width_scale = top if top > 0 else 1.0
        self._build_figure(cmap)

    @property
    def n_frames(self) -> int:
        """Number of frames this figure draws."""
        return self.layout.n_frames

    def _panel(self, ax: Any, heading: str) -> dict[str, Any]:
        from matplotlib import colormaps
        from matplotlib.collections import LineCollection, PolyCollection

        layout, theme = self.layout, self.theme
        ax.set_facecolor(theme["background"])
        ax.set_xlim(-layout.extent, layout.extent)
        ax.set_ylim(-layout.extent, layout.extent)
        ax.set_aspect("equal", adjustable="box")
        ax.set_axis_off()
        ax.set_title(heading, color=theme["foreground"], fontsize=11)
        artists: dict[str, Any] = {}
        artists["edges"] = LineCollection(layout.edge_segments, capstyle="butt", zorder=1)
        ax.add_collection(artists["edges"])
        ax.add_collection(PolyCollection(layout.petal_vertices, facecolors=theme["petal"],
                                         edgecolors=theme["petal_edge"], linewidths=0.8,
                                         zorder=2))
        node_colors: Any = theme["node"]
        if layout.labels is not None:
            node_colors = [colormaps["tab10"](int(c) % 10) for c in layout.labels]
        artists["nodes"] = ax.scatter(layout.node_xy[:, 0], layout.node_xy[:, 1], s=_NODE_AREA[0],
                                      c=node_colors, edgecolors=theme["foreground"],
                                      linewidths=1.0, zorder=6)
        artists["link"] = LineCollection(np.zeros((len(layout.nodes), 2, 2)),
                                         colors=theme["foreground"], linestyles="--",
                                         linewidths=0.9, zorder=3)
        ax.add_collection(artists["link"])
        arrow = dict(angles="xy", scale_units="xy", scale=1.0, units="dots",
                     width=1.6 * self.dpi / 100, headwidth=4.0, headlength=4.5,
                     headaxislength=4.0, minlength=0.0, zorder=4)
        zeros = np.zeros(len(layout.nodes))
        artists["euclidean"] = ax.quiver(zeros, zeros, zeros, zeros, color=EUCLIDEAN_COLOR,
                                         **arrow)
        artists["natural"] = ax.quiver(zeros, zeros, zeros, zeros, color=NATURAL_COLOR, **arrow)
        dot = dict(s=28, edgecolors="none", zorder=5)
        artists["p"] = ax.scatter(zeros, zeros, c=TEACHER_COLOR, **dot)
        artists["q"] = ax.scatter(zeros, zeros, c=STUDENT_COLOR, **dot)
        return artists

    def _build_figure(self, cmap: str) -> None:
        from matplotlib import colormaps
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.colors import Normalize
        from matplotlib.figure import Figure

        self._cmap = colormaps[cmap]
        self._norm = Normalize(-self.layout.kl_limit, self.layout.kl_limit, clip=True)
        size = (13.0, 7.0) if self.split else (7.6, 7.4)
        self.figure = Figure(figsize=size, dpi=self.dpi, facecolor=self.theme["background"])
        self.canvas = FigureCanvasAgg(self.figure)
        student = r"student $q$: width $\propto q(j|i)$"
        if self.split:
            boxes = [(0.005, 0.12, 0.43, 0.8), (0.435, 0.12, 0.43, 0.8)]
            headings = [student, r"teacher $p$: width $\propto p(j|i)$"]
            colorbar_box = (0.885, 0.2, 0.016, 0.64)
        else:
            boxes, headings = [(0.01, 0.13, 0.8, 0.79)], [student]
            colorbar_box = (0.84, 0.2, 0.028, 0.64)
        self.axes = [self.figure.add_axes(box) for box in boxes]
        self.panels = [self._panel(ax, h) for ax, h in zip(self.axes, headings, strict=True)]
        self.panel_fields = ["student", "teacher"][: len(self.axes)]
        self._add_colorbar(colorbar_box)
        self._add_legend_and_text()
        # Everything that changes between frames is drawn on top of a cached background
        # (blitting): text, legend and colour bar are rasterised once, not once per frame.
        self._dynamic = [panel[key] for panel in self.panels for key in _DYNAMIC] + [self.counter]
        for artist in self._dynamic:
            artist.set_animated(True)
        self.canvas.draw()
        self._background = self.canvas.copy_from_bbox(self.figure.bbox)

    def _add_colorbar(self, box: tuple[float, float, float, float]) -> None:
        from matplotlib.cm import ScalarMappable

        foreground = self.theme["foreground"]
        colorbar = self.figure.colorbar(ScalarMappable(self._norm, self._cmap),
                                        cax=self.figure.add_axes(box))
        colorbar.set_label(r"edge KL term $p(j|i)\,\log\,(p(j|i)\,/\,q(j|i))$, $j \neq i$",
                           color=foreground)
        colorbar.ax.tick_params(colors=foreground, labelsize=8)
        colorbar.outline.set_edgecolor(foreground)

    def _add_legend_and_text(self) -> None:
        from matplotlib.lines import Line2D

        foreground = self.theme["foreground"]
        handles = [
            Line2D([], [], ls="", marker="o", color=TEACHER_COLOR, label=r"teacher $p$"),
            Line2D([], [], ls="", marker="o", color=STUDENT_COLOR, label=r"student $q$"),
            Line2D([], [], ls="--", color=foreground, label=r"$p$ to $q$"),
            Line2D([], [], color=EUCLIDEAN_COLOR, lw=2.5, label=r"Euclidean $p - q$"),
            Line2D([], [], color=NATURAL_COLOR, lw=2.5, label=r"natural $F_q^{-1}(p - q)$"),
            Line2D([], [], color=foreground, lw=3, label="edge i→j: left side of the chord"),
            Line2D([], [], ls="", marker="o", ms=9, color=foreground,
                   label=r"node area: $q(i|i)$, $p(i|i)$"),
        ]
        legend = self.figure.legend(handles=handles, loc="lower center", ncol=3, fontsize=9,
                                    frameon=False, bbox_to_anchor=(0.45, 0.0))
        for text in legend.get_texts():
            text.set_color(foreground)
        self.figure.text(0.5, 0.975, self.title, ha="center", va="top", fontsize=14,
                         color=foreground)
        # bottom left beside the legend in the wide split figure, top left in the square one
        corner = (0.015, 0.02, "bottom") if self.split else (0.015, 0.975, "top")
        self.counter = self.figure.text(corner[0], corner[1], "", ha="left", va=corner[2],
                                        fontsize=12, color=foreground, family="monospace")

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` in pixels of a rendered frame."""
        width, height = self.canvas.get_width_height()
        return height, width

    def update(self, frame: int) -> None:
        """Set every artist to frame ``frame`` (0 .. n_frames - 1) without drawing."""
        if not 0 <= frame < self.n_frames:
            raise ValueError(f"frame must lie in [0, {self.n_frames - 1}], got {frame!r}")
        layout = self.layout
        colors = self._cmap(self._norm(layout.kl_terms[frame]))
        for artists, name in zip(self.panels, self.panel_fields, strict=True):
            weight = (layout.edge_student if name == "student" else layout.edge_teacher)[frame]
            order = np.argsort(weight, kind="stable")  # heavy edges on top
            artists["edges"].set_segments(layout.edge_segments[order])
            artists["edges"].set_linewidths(self.max_width * weight[order] / self.width_scale)
            artists["edges"].set_colors(colors[order])
            artists["link"].set_segments(np.stack([layout.p_xy[frame], layout.q_xy[frame]],
                                                  axis=1))
            for key, vectors in (("euclidean", layout.euclidean), ("natural", layout.natural)):
                artists[key].set_offsets(layout.q_xy[frame])
                artists[key].set_UVC(vectors[frame][:, 0], vectors[frame][:, 1])
            artists["p"].set_offsets(layout.p_xy[frame])
            artists["q"].set_offsets(layout.q_xy[frame])
            own = (layout.self_q if name == "student" else layout.self_p)[frame]
            artists["nodes"].set_sizes(_NODE_AREA[0] + _NODE_AREA[1] * own)
        self.counter.set_text(
            f"t = {int(layout.steps[frame])}\nKL(p||q) = {layout.mean_kl[frame]:.3f}"
        )

    def render(self, frame: int) -> np.ndarray:
        """The image of ``frame`` as an ``(H, W, 3)`` uint8 array."""
        self.update(frame)
        self.canvas.restore_region(self._background)
        for artist in self._dynamic:
            self.figure.draw_artist(artist)
        return np.asarray(self.canvas.buffer_rgba())[..., :3].copy()

    def frames(self) -> Iterator[np.ndarray]:
        """Every frame's image, in order."""
        for frame in range(self.n_frames):
            yield self.render(frame)

    def palette_colors(self, count: int = 64) -> np.ndarray:
        """Colours to reserve in a GIF palette, ``(m, 3)`` uint8.

        ``count`` samples of the KL colormap, the dot and arrow colours, the theme's colours and
        the label colours: each covers too few pixels to win a palette entry by median cut.
        """
        from matplotlib import colormaps
        from matplotlib.colors import to_rgb

        named = [TEACHER_COLOR, STUDENT_COLOR, EUCLIDEAN_COLOR, NATURAL_COLOR,
                 *self.theme.values()]
        rgb = np.concatenate([
            self._cmap(np.linspace(0, 1, count))[:, :3],
            np.array([to_rgb(c) for c in named]),
            np.array(colormaps["tab10"].colors),
        ])
        return np.round(255 * rgb).astype(np.uint8)

    def to_pixel(self, xy: np.ndarray, panel: int = 0) -> tuple[int, int]:
        """``(row, column)`` of the pixel showing data point ``xy`` in ``panel``."""
        x, y = self.axes[panel].transData.transform(np.asarray(xy, dtype=float))
        height, _ = self.size
        return int(round(height - y - 0.5)), int(round(x - 0.5))

    def save(self, out: str | Path, *, fps: float = 10.0) -> Rendering:
        """Render every frame into a GIF or MP4 ``out`` (:func:`rkdo.viz.encode.save_frames`),
        then release the figure."""
        try:
            height, width = self.size
            images = list(self.frames())
            reserved = self.palette_colors()
        finally:
            self.close()
        path = save_frames(images, out, fps, reserved_colors=reserved)
        return Rendering(path, len(images), width, height, len(self.layout.nodes))

    def close(self) -> None:
        """Release the figure."""
        self.figure.clear()


@dataclass(frozen=True)
class Rendering:
    """What :meth:`Kaleidoscope.save` wrote: the file, its frame count, size and node count."""

    path: Path
    frames: int
    width: int
    height: int
    nodes: int


