"""The RKDO kaleidoscope: teacher and student neighbourhood fields as an animated star graph.

Each frame shows ``n`` anchors on a circle. For a teacher field ``p(j|i)`` and a student field
``q(j|i)`` (row-stochastic ``(n, n)`` matrices):

- every directed edge ``i -> j`` (``i != j``) is a chord drawn slightly to the *left* of the
  direction ``i -> j`` (so ``i -> j`` and ``j -> i`` lie side by side), with line width
  proportional to ``q(j|i)`` (student panel) or ``p(j|i)`` (teacher panel) and colour given by the
  edge's term of the KL divergence,

      kl(i -> j) = p(j|i) log( p(j|i) / q(j|i) ),        KL(p(.|i) || q(.|i)) = sum_j kl(i -> j),

  red where the teacher puts more mass than the student, blue where it puts less;
- at each node a *petal*: the 2-simplex over the node's top-3 neighbours (chosen once, from the
  time-averaged ``(p + q) / 2``, so petals do not jump between frames), apex outward. The red dot
  is the teacher ``p(.|i)`` and the blue dot the student ``q(.|i)``, both restricted to the three
  neighbours and renormalised (:func:`rkdo.geometry.petal_projection`); a dashed line joins them.
  From the student dot, a purple arrow shows the Euclidean direction ``p - q`` and a green arrow
  the natural-gradient direction ``F_q^-1 (p - q)`` (:func:`rkdo.geometry.natural_direction`).
  The natural direction is multiplied by 3 (the number of petal vertices), which makes the two
  arrows coincide at the uniform ``q``, so that only the effect of the geometry remains. An arrow
  for a displacement of length ``m`` in the petal is drawn with length ``L m / (m + m0)``
  (``L = arrow_length`` petal sizes, ``m0`` 4% of a petal): directions stay readable when ``p``
  and ``q`` are close, lengths still grow with ``m``, and vanish when ``p = q``.

The diagonal ``p(i|i), q(i|i)`` (an anchor with its own other view, in the pair form) is not
drawn. When a field has more points than nodes, a label-balanced subset is shown and each row is
renormalised over the subset: ``p(j|i, j in S)``.

The figure is built once and its artists are updated for each frame (edges are one
``LineCollection`` per panel), so 50 frames render in seconds. Frames are saved as a GIF with
Pillow, or as an MP4 through ``ffmpeg`` when it is installed and the file name ends in ``.mp4``.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from rkdo.fields import Fields, load_fields
from rkdo.geometry import natural_direction, petal_projection, simplex_to_plane, top_neighbours

__all__ = [
    "Fields",
    "THEMES",
    "TEACHER_COLOR",
    "STUDENT_COLOR",
    "EUCLIDEAN_COLOR",
    "NATURAL_COLOR",
    "load_fields",
    "select_nodes",
    "circle_layout",
    "Kaleidoscope",
    "render_kaleidoscope",
    "save_frames",
]

TEACHER_COLOR = "#ff3b30"
STUDENT_COLOR = "#2f80ff"
EUCLIDEAN_COLOR = "#b45cff"
NATURAL_COLOR = "#22c55e"
PETAL_SIZE = 3
_DYNAMIC = ("edges", "link", "euclidean", "natural", "p", "q", "nodes")  # in drawing order

THEMES: dict[str, dict[str, str]] = {
    "dark": {"background": "#0d1117", "foreground": "#e6edf3", "petal": "#1c2430",
             "petal_edge": "#6b7687", "node": "#f5f5f5"},
    "light": {"background": "#ffffff", "foreground": "#1f2328", "petal": "#eef0f4",
              "petal_edge": "#8a93a3", "node": "#2b2b2b"},
}


def select_nodes(n_points: int, n_nodes: int, labels: np.ndarray | None = None) -> np.ndarray:
    """Indices of ``n_nodes`` of ``n_points`` anchors to draw.

    Without labels: the first ``n_nodes``. With labels: round-robin over the classes (first
    unused member of each class in turn), sorted by (label, index) so classes sit together.
    """
    if isinstance(n_nodes, bool) or int(n_nodes) != n_nodes or not (
        PETAL_SIZE + 1 <= n_nodes <= n_points
    ):
        raise ValueError(
            f"nodes must be an integer in [{PETAL_SIZE + 1}, {n_points}] (the field has "
            f"{n_points} points), got {n_nodes!r}"
        )
    n_nodes = int(n_nodes)
    if labels is None:
        return np.arange(n_nodes)
    labels = np.asarray(labels)
    members = [list(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    chosen: list[int] = []
    while len(chosen) < n_nodes:
        for queue in members:
            if queue and len(chosen) < n_nodes:
                chosen.append(int(queue.pop(0)))
    return np.array(sorted(chosen, key=lambda i: (labels[i], i)))


def _subset(field: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    block = field[:, nodes][:, :, nodes]
    total = block.sum(axis=-1, keepdims=True)
    uniform = np.full_like(block, 1.0 / len(nodes))
    return np.where(total > 0, block / np.where(total > 0, total, 1.0), uniform)


def circle_layout(n: int, radius: float = 1.0) -> np.ndarray:
    """``(n, 2)`` positions on a circle, node 0 at the top, clockwise."""
    angle = math.pi / 2 - 2 * math.pi * np.arange(n) / n
    return radius * np.stack([np.cos(angle), np.sin(angle)], axis=-1)


def _rotate(vectors: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.stack([c * vectors[..., 0] - s * vectors[..., 1],
                     s * vectors[..., 0] + c * vectors[..., 1]], axis=-1)


def _kl_terms(teacher: np.ndarray, student: np.ndarray) -> np.ndarray:
    """``p log(p / q)`` elementwise, 0 where ``p = 0``; from logs, never from a ratio."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = teacher * (np.log(teacher) - np.log(student))
    return np.where(teacher > 0, terms, 0.0)


def _frame_indices(n_frames: int, frames: int | None) -> np.ndarray:
    if frames is None or frames >= n_frames:
        return np.arange(n_frames)
    if isinstance(frames, bool) or int(frames) != frames or frames < 1:
        raise ValueError(f"frames must be an integer >= 1, got {frames!r}")
    return np.unique(np.linspace(0, n_frames - 1, int(frames)).round().astype(np.int64))


class Kaleidoscope:
    """A reusable figure that draws one frame of the kaleidoscope at a time.

    Args:
        fields: the teacher and student fields (:class:`Fields`).
        nodes: number of anchors drawn (default: all, at most 12).
        split: student panel (left) and teacher panel (right) side by side; otherwise the student.
        theme: ``"dark"`` or ``"light"``.
        dpi: resolution; the image is ``figsize * dpi`` pixels.
        frames: draw only this many frames, evenly spaced (default: all).
        cmap: colormap of the KL terms (a diverging one: the terms have both signs).
        arrow_length: the length (in petal sizes) that arrows approach for large displacements.
        max_width: line width (points) of the heaviest edge.
        title: text at the top of the figure.
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
        if theme not in THEMES:
            raise ValueError(f"theme must be one of {tuple(THEMES)}, got {theme!r}")
        if not (float(dpi) > 0 and math.isfinite(float(dpi))):
            raise ValueError(f"dpi must be a number > 0, got {dpi!r}")
        self.fields = fields
        self.split = bool(split)
        self.theme = THEMES[theme]
        self.dpi = float(dpi)
        self.arrow_length = float(arrow_length)
        self.max_width = float(max_width)
        self.title = title
        n_nodes = min(fields.n_points, 12) if nodes is None else nodes
        self.nodes = select_nodes(fields.n_points, n_nodes, fields.labels)
        self.frame_index = _frame_indices(fields.n_frames, frames)
        self.teacher = _subset(fields.teacher[self.frame_index], self.nodes)
        self.student = _subset(fields.student[self.frame_index], self.nodes)
        self.steps = fields.steps[self.frame_index]
        self.labels = None if fields.labels is None else fields.labels[self.nodes]
        self._prepare_geometry()
        self._build_figure(cmap)

    # ------------------------------------------------------------------ geometry (no drawing)

    @property
    def n_frames(self) -> int:
        """Number of frames this figure draws."""
        return self.teacher.shape[0]

    def _prepare_geometry(self) -> None:
        n = len(self.nodes)
        self.node_xy = circle_layout(n)
        outward = self.node_xy.copy()
        spacing = 2 * math.pi * 1.3 / n
        self.petal_size = min(0.3, 0.4 * spacing)
        centres = outward * (1.0 + 0.12 + self.petal_size)
        apex = outward * self.petal_size
        self.petal_vertices = centres[:, None, :] + np.stack(
            [apex, _rotate(apex, 2 * math.pi / 3), _rotate(apex, -2 * math.pi / 3)], axis=1
        )
        self.extent = 1.0 + 0.12 + 2.0 * self.petal_size + 0.06

        both = 0.5 * (self.teacher + self.student).mean(axis=0)
        self.neighbours = top_neighbours(both, PETAL_SIZE).numpy()
        p_petal = petal_projection(self.teacher, self.neighbours)
        q_petal = petal_projection(self.student, self.neighbours)
        vertices = self.petal_vertices  # (n, 3, 2), broadcast over frames
        self.p_xy = simplex_to_plane(p_petal, vertices).numpy()
        self.q_xy = simplex_to_plane(q_petal, vertices).numpy()
        natural = PETAL_SIZE * natural_direction(p_petal, q_petal)
        self.euclidean = self._arrow(simplex_to_plane(p_petal - q_petal, vertices).numpy())
        self.natural = self._arrow(simplex_to_plane(natural, vertices).numpy())

        src, dst = np.nonzero(~np.eye(n, dtype=bool))
        self.edge_src, self.edge_dst = src, dst
        start, end = self.node_xy[src], self.node_xy[dst]
        direction = (end - start) / np.linalg.norm(end - start, axis=-1, keepdims=True)
        left = np.stack([-direction[:, 1], direction[:, 0]], axis=-1)
        offset = 0.022 * left
        shorten = 0.07 * direction
        self.edge_segments = np.stack([start + shorten + offset, end - shorten + offset], axis=1)

        self.kl_terms = _kl_terms(self.teacher, self.student)[:, src, dst]
        self.edge_student = self.student[:, src, dst]
        self.edge_teacher = self.teacher[:, src, dst]
        # a shared, symmetric colour scale; q = 0 where p > 0 gives an infinite term (clipped)
        finite = np.abs(self.kl_terms[np.isfinite(self.kl_terms)])
        limit = float(np.quantile(finite, 0.995)) if finite.size else 0.0
        self.kl_limit = limit if limit > 0 else 1.0
        widths = [self.edge_student] + ([self.edge_teacher] if self.split else [])
        top = max(float(w.max()) for w in widths)
        self.width_scale = top if top > 0 else 1.0
        self.mean_kl = (_kl_terms(self.teacher, self.student).sum(-1)).mean(-1)

    def _arrow(self, displacement: np.ndarray) -> np.ndarray:
        """Drawn arrow ``L m / (m + m0)`` along ``displacement`` of length ``m``."""
        length = np.linalg.norm(displacement, axis=-1, keepdims=True)
        reach = self.arrow_length * self.petal_size
        return displacement * reach / (length + 0.04 * self.petal_size)

    def edge_midpoint(self, i: int, j: int) -> np.ndarray:
        """Data coordinates of the middle of the drawn edge ``i -> j`` (node positions 0..n-1)."""
        index = np.flatnonzero((self.edge_src == i) & (self.edge_dst == j))
        if len(index) != 1:
            raise ValueError(f"no edge {i} -> {j} among {len(self.nodes)} nodes")
        return self.edge_segments[index[0]].mean(axis=0)

    # ------------------------------------------------------------------ drawing

    def _panel(self, ax, heading: str) -> dict:
        from matplotlib.collections import LineCollection, PolyCollection

        theme = self.theme
        ax.set_facecolor(theme["background"])
        ax.set_xlim(-self.extent, self.extent)
        ax.set_ylim(-self.extent, self.extent)
        ax.set_aspect("equal", adjustable="box")
        ax.set_axis_off()
        ax.set_title(heading, color=theme["foreground"], fontsize=11)
        artists: dict = {}
        artists["edges"] = LineCollection(self.edge_segments, capstyle="butt", zorder=1)
        ax.add_collection(artists["edges"])
        ax.add_collection(PolyCollection(self.petal_vertices, facecolors=theme["petal"],
                                         edgecolors=theme["petal_edge"], linewidths=0.8,
                                         zorder=2))
        if self.labels is None:
            node_colors = theme["node"]
        else:
            from matplotlib import colormaps

            palette = colormaps["tab10"]
            node_colors = [palette(int(c) % 10) for c in self.labels]
        artists["nodes"] = ax.scatter(self.node_xy[:, 0], self.node_xy[:, 1], s=90,
                                      c=node_colors, edgecolors=theme["foreground"],
                                      linewidths=1.0, zorder=6)
        artists["link"] = LineCollection(np.zeros((len(self.nodes), 2, 2)),
                                         colors=theme["foreground"], linestyles="--",
                                         linewidths=0.9, zorder=3)
        ax.add_collection(artists["link"])
        arrow = dict(angles="xy", scale_units="xy", scale=1.0, units="dots",
                     width=1.6 * self.dpi / 100, headwidth=4.0, headlength=4.5,
                     headaxislength=4.0, minlength=0.0, zorder=4)
        zeros = np.zeros(len(self.nodes))
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
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D

        theme = self.theme
        self._cmap = colormaps[cmap]
        self._norm = Normalize(-self.kl_limit, self.kl_limit, clip=True)
        size = (13.0, 7.0) if self.split else (7.6, 7.4)
        self.figure = Figure(figsize=size, dpi=self.dpi, facecolor=theme["background"])
        self.canvas = FigureCanvasAgg(self.figure)
        if self.split:
            boxes = [(0.005, 0.12, 0.43, 0.8), (0.435, 0.12, 0.43, 0.8)]
            headings = [r"student $q$: width $\propto q(j|i)$",
                        r"teacher $p$: width $\propto p(j|i)$"]
            colorbar_box = (0.885, 0.2, 0.016, 0.64)
        else:
            boxes = [(0.01, 0.13, 0.8, 0.79)]
            headings = [r"student $q$: width $\propto q(j|i)$"]
            colorbar_box = (0.84, 0.2, 0.028, 0.64)
        self.axes = [self.figure.add_axes(box) for box in boxes]
        self.panels = [self._panel(ax, h) for ax, h in zip(self.axes, headings, strict=True)]
        self.panel_fields = ["student", "teacher"][: len(self.axes)]

        colorbar = self.figure.colorbar(ScalarMappable(self._norm, self._cmap),
                                        cax=self.figure.add_axes(colorbar_box))
        colorbar.set_label(r"edge KL term $p(j|i)\,\log\,(p(j|i)\,/\,q(j|i))$",
                           color=theme["foreground"])
        colorbar.ax.tick_params(colors=theme["foreground"], labelsize=8)
        colorbar.outline.set_edgecolor(theme["foreground"])

        handles = [
            Line2D([], [], ls="", marker="o", color=TEACHER_COLOR, label=r"teacher $p$"),
            Line2D([], [], ls="", marker="o", color=STUDENT_COLOR, label=r"student $q$"),
            Line2D([], [], ls="--", color=theme["foreground"], label=r"$p$ to $q$"),
            Line2D([], [], color=EUCLIDEAN_COLOR, lw=2.5, label=r"Euclidean $p - q$"),
            Line2D([], [], color=NATURAL_COLOR, lw=2.5,
                   label=r"natural $F_q^{-1}(p - q)$"),
            Line2D([], [], color=theme["foreground"], lw=3,
                   label="edge i→j: left side of the chord"),
        ]
        legend = self.figure.legend(handles=handles, loc="lower center", ncol=3, fontsize=9,
                                    frameon=False, bbox_to_anchor=(0.45, 0.0))
        for text in legend.get_texts():
            text.set_color(theme["foreground"])
        self.figure.text(0.5, 0.975, self.title, ha="center", va="top", fontsize=14,
                         color=theme["foreground"])
        # bottom left beside the legend in the wide split figure, top left in the square one
        corner = (0.015, 0.02, "bottom") if self.split else (0.015, 0.975, "top")
        self.counter = self.figure.text(corner[0], corner[1], "", ha="left", va=corner[2],
                                        fontsize=12, color=theme["foreground"],
                                        family="monospace")
        # Everything that changes between frames is drawn on top of a cached background
        # (blitting): text, legend and colour bar are rasterised once, not once per frame.
        self._dynamic = [panel[key] for panel in self.panels for key in _DYNAMIC] + [self.counter]
        for artist in self._dynamic:
            artist.set_animated(True)
        self.canvas.draw()
        self._background = self.canvas.copy_from_bbox(self.figure.bbox)

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` in pixels of a rendered frame."""
        width, height = self.canvas.get_width_height()
        return height, width

    def update(self, frame: int) -> None:
        """Set every artist to frame ``frame`` (0 .. n_frames - 1) without drawing."""
        if not 0 <= frame < self.n_frames:
            raise ValueError(f"frame must lie in [0, {self.n_frames - 1}], got {frame!r}")
        colors = self._cmap(self._norm(self.kl_terms[frame]))
        for artists, name in zip(self.panels, self.panel_fields, strict=True):
            weight = (self.edge_student if name == "student" else self.edge_teacher)[frame]
            order = np.argsort(weight, kind="stable")  # heavy edges on top
            artists["edges"].set_segments(self.edge_segments[order])
            artists["edges"].set_linewidths(self.max_width * weight[order] / self.width_scale)
            artists["edges"].set_colors(colors[order])
            artists["link"].set_segments(np.stack([self.p_xy[frame], self.q_xy[frame]], axis=1))
            for key, vectors in (("euclidean", self.euclidean), ("natural", self.natural)):
                artists[key].set_offsets(self.q_xy[frame])
                artists[key].set_UVC(vectors[frame][:, 0], vectors[frame][:, 1])
            artists["p"].set_offsets(self.p_xy[frame])
            artists["q"].set_offsets(self.q_xy[frame])
        self.counter.set_text(
            f"t = {int(self.steps[frame])}\nKL(p||q) = {self.mean_kl[frame]:.3f}"
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

    def close(self) -> None:
        """Release the figure."""
        self.figure.clear()


def _gif_palette(images: list[np.ndarray], reserved: np.ndarray | None = None):
    """One 256-colour palette for all frames: median cut of a montage, plus ``reserved`` colours.

    Reserving the colormap's colours keeps thin gradients (the colour bar, edge colours) smooth:
    median cut gives few entries to colours that cover few pixels.
    """
    from PIL import Image

    reserved = np.zeros((0, 3), np.uint8) if reserved is None else np.asarray(reserved, np.uint8)
    picks = np.linspace(0, len(images) - 1, min(len(images), 8)).round().astype(int)
    montage = np.concatenate([images[i][::2, ::2] for i in picks], axis=0)
    base = Image.fromarray(montage).quantize(colors=256 - len(reserved),
                                             method=Image.Quantize.MEDIANCUT)
    used = len(base.getcolors(256))
    colors = base.getpalette()[: 3 * used] + reserved.reshape(-1).tolist()
    palette = Image.new("P", (1, 1))
    palette.putpalette(colors + [0] * (768 - len(colors)))
    return palette


def save_frames(
    images: list[np.ndarray],
    out: str | Path,
    fps: float = 10.0,
    *,
    reserved_colors: np.ndarray | None = None,
) -> Path:
    """Write RGB frames as a GIF (Pillow, one shared palette) or MP4 (``ffmpeg``, by suffix).

    ``reserved_colors`` (at most 128 RGB rows) are kept in the GIF palette as they are.
    """
    from PIL import Image

    out = Path(out)
    if reserved_colors is not None and len(reserved_colors) > 128:
        raise ValueError(f"reserved_colors takes at most 128 colours, got {len(reserved_colors)}")
    if not (float(fps) > 0 and math.isfinite(float(fps))):
        raise ValueError(f"fps must be a number > 0, got {fps!r}")
    if not images:
        raise ValueError("no frames to save")
    suffix = out.suffix.lower()
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".mp4":
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            raise ValueError("writing .mp4 needs ffmpeg on the PATH; install it or use a .gif name")
        height, width, _ = images[0].shape
        command = [ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
                   "-s", f"{width}x{height}", "-r", f"{float(fps)}", "-i", "-",
                   "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-pix_fmt", "yuv420p",
                   "-vcodec", "libx264", str(out)]
        subprocess.run(command, input=b"".join(np.ascontiguousarray(i).tobytes() for i in images),
                       check=True)
        return out
    if suffix != ".gif":
        raise ValueError(f"out must end in .gif or .mp4, got {out.name!r}")
    palette = _gif_palette(images, reserved_colors)
    colors = palette.getpalette()
    frames = []
    for image in images:
        # indices into one shared palette: the GIF needs no per-frame colour tables
        frame = Image.fromarray(image).quantize(palette=palette, dither=Image.Dither.NONE)
        frame = Image.fromarray(np.asarray(frame), mode="P")
        frame.putpalette(colors)
        frames.append(frame)
    frames[0].save(out, save_all=True, append_images=frames[1:], duration=round(1000 / fps),
                   loop=0)
    return out


def render_kaleidoscope(
    fields: Fields,
    out: str | Path,
    *,
    fps: float = 10.0,
    **options,
) -> Path:
    """Render every frame of ``fields`` with :class:`Kaleidoscope` (``options``) into ``out``."""
    kaleidoscope = Kaleidoscope(fields, **options)
    try:
        images = list(kaleidoscope.frames())
    finally:
        kaleidoscope.close()
    return save_frames(images, out, fps, reserved_colors=kaleidoscope.palette_colors())
