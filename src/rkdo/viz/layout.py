"""Where the kaleidoscope puts things: node, edge and petal geometry and the KL edge terms (numpy).

For ``n`` drawn anchors of row-stochastic fields ``p(j|i)`` (teacher) and ``q(j|i)`` (student)
at ``F`` frames:

- nodes sit on the unit circle, node 0 at the top, clockwise (:func:`circle_layout`);
- the edge ``i -> j`` (``i != j``) is the chord from ``i`` to ``j``, shortened at both ends and
  shifted to its *left*, so ``i -> j`` and ``j -> i`` lie side by side (:func:`edge_segments`);
- its width and colour come from the rows conditioned on the *other* drawn anchors,
  ``p(j|i, j != i) = p(j|i) / (1 - p(i|i))`` (likewise ``q``): its colour is the edge's term of
  their KL divergence (:func:`kl_terms`),

      kl(i -> j) = p(j|i, j != i) log( p(j|i, j != i) / q(j|i, j != i) ),

  so it shows *which* neighbours the teacher favours over the student. The mass on the anchor
  itself (its own other view, the pair form's positive), ``p(i|i)`` and ``q(i|i)``, is where a
  trained teacher and student differ most; it is drawn as the node's size (:attr:`Layout.self_p`,
  :attr:`Layout.self_q`). The colour scale is symmetric, at the 98% quantile of the drawn
  edges' ``|kl|`` over all frames;
- a field of more than :data:`ALL_EDGES_UP_TO` nodes draws only each node's
  :data:`EDGES_PER_NODE` heaviest outgoing edges (by ``max(p, q)`` over frames), not every pair;

- outside each node a *petal*: an equilateral triangle, apex outward (:func:`petal_vertices`),
  whose vertices are the node's top-3 neighbours by the time-averaged ``(p + q) / 2``. The
  teacher and student rows restricted to those three and renormalised
  (:func:`rkdo.geometry.petal_projection`) are points of the triangle in barycentric coordinates.
  From the student point, arrows show the Euclidean direction ``p - q`` and the natural-gradient
  direction ``3 F_q^-1 (p - q)`` (:func:`rkdo.geometry.natural_direction`; the factor 3, the
  number of vertices, makes both coincide at the uniform ``q``). A displacement of length ``m``
  is drawn with length ``L m / (m + m0)`` (:func:`arrow`): readable when ``p`` and ``q`` are
  close, growing with ``m``, zero when ``p = q``.

When a field has more points than nodes, a label-balanced subset ``S`` is drawn
(:func:`select_nodes`: in each class the anchors whose rows differ most between teacher and
student, ``mean_t KL(p_t(.|i) || q_t(.|i))``, first) and each row is renormalised over it,
``p(j|i, j in S)`` (:func:`restrict_rows`). Nothing here draws: :mod:`rkdo.viz.kaleidoscope`
does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rkdo._validation import check_int
from rkdo.fields import MIN_POINTS, Fields
from rkdo.geometry import natural_direction, petal_projection, simplex_to_plane, top_neighbours

__all__ = [
    "ALL_EDGES_UP_TO",
    "EDGES_PER_NODE",
    "PETAL_SIZE",
    "Layout",
    "arrow",
    "circle_layout",
    "edge_segments",
    "frame_indices",
    "heaviest_edges",
    "kl_terms",
    "petal_size",
    "petal_vertices",
    "restrict_rows",
    "rotate",
    "select_nodes",
    "without_self",
]

PETAL_SIZE = MIN_POINTS - 1  # vertices of a petal: the top-3 neighbours of its node
ALL_EDGES_UP_TO = 8
EDGES_PER_NODE = 3
_COLOUR_QUANTILE = 0.98
_GAP = 0.12  # between the circle of nodes and the petals, in radii


def select_nodes(n_points: int, n_nodes: int, labels: np.ndarray | None = None,
                 scores: np.ndarray | None = None) -> np.ndarray:
    """Indices of ``n_nodes`` of ``n_points`` anchors to draw.

    Without labels: the first ``n_nodes`` (the highest ``scores``, if given). With labels:
    round-robin over the classes (the next member of each class in turn: by index, or by
    descending score), sorted by (label, index) so classes sit together.
    """
    if isinstance(n_nodes, bool) or int(n_nodes) != n_nodes or not (
        MIN_POINTS <= n_nodes <= n_points
    ):
        raise ValueError(
            f"nodes must be an integer in [{MIN_POINTS}, {n_points}] (the field has "
            f"{n_points} points), got {n_nodes!r}"
        )
    n_nodes = int(n_nodes)
    rank = (np.arange(n_points) if scores is None
            else np.argsort(-np.asarray(scores, dtype=float), kind="stable"))
    if labels is None:
        return np.sort(rank[:n_nodes])
    labels = np.asarray(labels)
    members = [[int(i) for i in rank if labels[i] == c] for c in np.unique(labels)]
    chosen: list[int] = []
    while len(chosen) < n_nodes:
        for queue in members:
            if queue and len(chosen) < n_nodes:
                chosen.append(int(queue.pop(0)))
    return np.array(sorted(chosen, key=lambda i: (labels[i], i)))


def restrict_rows(field: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """``(F, n, n)`` block of ``field`` over ``nodes``, each row renormalised (uniform if empty)."""
    block = field[:, nodes][:, :, nodes]
    total = block.sum(axis=-1, keepdims=True)
    uniform = np.full_like(block, 1.0 / len(nodes))
    return np.where(total > 0, block / np.where(total > 0, total, 1.0), uniform)


def without_self(field: np.ndarray) -> np.ndarray:
    """``(F, n, n)`` rows conditioned on ``j != i``: diagonal 0, each row renormalised."""
    off = np.where(np.eye(field.shape[-1], dtype=bool), 0.0, field)
    total = off.sum(axis=-1, keepdims=True)
    uniform = np.where(np.eye(field.shape[-1], dtype=bool), 0.0, 1.0 / (field.shape[-1] - 1))
    return np.where(total > 0, off / np.where(total > 0, total, 1.0), uniform)


def heaviest_edges(weight: np.ndarray, per_node: int) -> np.ndarray:
    """Mask ``(n, n)`` of each row's ``per_node`` largest off-diagonal entries of ``weight``."""
    n = weight.shape[0]
    ranked = np.argsort(-np.where(np.eye(n, dtype=bool), -np.inf, weight), axis=1,
                        kind="stable")[:, :per_node]
    mask = np.zeros((n, n), dtype=bool)
    np.put_along_axis(mask, ranked, True, axis=1)
    return mask


def circle_layout(n: int, radius: float = 1.0) -> np.ndarray:
    """``(n, 2)`` positions on a circle, node 0 at the top, clockwise."""
    angle = math.pi / 2 - 2 * math.pi * np.arange(n) / n
    return radius * np.stack([np.cos(angle), np.sin(angle)], axis=-1)


def rotate(vectors: np.ndarray, angle: float) -> np.ndarray:
    """``vectors`` ``(..., 2)`` turned counter-clockwise by ``angle`` radians."""
    c, s = math.cos(angle), math.sin(angle)
    return np.stack([c * vectors[..., 0] - s * vectors[..., 1],
                     s * vectors[..., 0] + c * vectors[..., 1]], axis=-1)


def kl_terms(teacher: np.ndarray, student: np.ndarray) -> np.ndarray:
    """``p log(p / q)`` elementwise, 0 where ``p = 0``; from logs, never from a ratio."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = teacher * (np.log(teacher) - np.log(student))
    return np.where(teacher > 0, terms, 0.0)


def frame_indices(n_frames: int, frames: int | None) -> np.ndarray:
    """All ``n_frames`` indices, or ``frames`` of them evenly spaced (first and last included)."""
    if frames is None or (not isinstance(frames, bool) and frames >= n_frames):
        return np.arange(n_frames)
    frames = check_int("frames", frames, low=1)
    return np.unique(np.linspace(0, n_frames - 1, frames).round().astype(np.int64))


def petal_size(n: int) -> float:
    """Apex distance of each petal from its centre: small enough for neighbours not to touch."""
    return min(0.3, 0.4 * 2 * math.pi * 1.3 / n)


def petal_vertices(node_xy: np.ndarray, size: float) -> np.ndarray:
    """``(n, 3, 2)`` triangle vertices outside each unit-circle node, apex outward."""
    centres = node_xy * (1.0 + _GAP + size)
    apex = node_xy * size
    return centres[:, None, :] + np.stack(
        [apex, rotate(apex, 2 * math.pi / 3), rotate(apex, -2 * math.pi / 3)], axis=1
    )


def edge_segments(node_xy: np.ndarray, mask: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(source, target, segments)`` of every directed edge ``i -> j``, ``i != j`` (only those
    in ``mask``, if given).

    ``segments`` is ``(E, 2, 2)``: each chord shortened by 0.07 at both ends (clear of the node
    markers) and shifted by 0.022 to the left of its direction.
    """
    n = len(node_xy)
    keep = ~np.eye(n, dtype=bool) if mask is None else mask & ~np.eye(n, dtype=bool)
    source, target = np.nonzero(keep)
    start, end = node_xy[source], node_xy[target]
    direction = (end - start) / np.linalg.norm(end - start, axis=-1, keepdims=True)
    left = np.stack([-direction[:, 1], direction[:, 0]], axis=-1)
    offset, shorten = 0.022 * left, 0.07 * direction
    return source, target, np.stack([start + shorten + offset, end - shorten + offset], axis=1)


def arrow(displacement: np.ndarray, reach: float, knee: float) -> np.ndarray:
    """Arrow ``reach * m / (m + knee)`` along ``displacement`` ``(..., 2)`` of length ``m``."""
    length = np.linalg.norm(displacement, axis=-1, keepdims=True)
    return displacement * reach / (length + knee)


@dataclass
class Layout:
    """Everything the kaleidoscope draws, per frame, in data coordinates (module docstring).

    Attributes (``F`` frames drawn, ``n`` nodes, ``E = n (n - 1)`` edges):
        nodes: ``(n,)`` indices of the drawn anchors in the fields; labels: theirs, or None.
        steps: ``(F,)``; teacher, student: ``(F, n, n)`` rows renormalised over the nodes.
        node_xy: ``(n, 2)``; petal_size, extent: petal apex distance, half-width of the view.
        petal_vertices: ``(n, 3, 2)``; neighbours: ``(n, 3)`` node positions at the vertices.
        p_xy, q_xy: ``(F, n, 2)`` teacher and student points in the petals.
        euclidean, natural: ``(F, n, 2)`` the drawn arrows, from ``q_xy``.
        edge_src, edge_dst: ``(E,)``; edge_segments: ``(E, 2, 2)``.
        kl_terms, edge_teacher, edge_student: ``(F, E)`` per-edge KL term, ``p`` and ``q`` of
            the rows conditioned on ``j != i``.
        self_p, self_q: ``(F, n)`` the teacher's and student's mass on the anchor itself.
        kl_limit: symmetric colour limit (98% quantile of the drawn ``|kl|``).
        mean_kl: ``(F,)`` mean over nodes of ``KL(p(.|i) || q(.|i))`` over the drawn anchors.
    """

    nodes: np.ndarray
    labels: np.ndarray | None
    steps: np.ndarray
    teacher: np.ndarray
    student: np.ndarray
    node_xy: np.ndarray
    petal_size: float
    extent: float
    petal_vertices: np.ndarray
    neighbours: np.ndarray
    p_xy: np.ndarray
    q_xy: np.ndarray
    euclidean: np.ndarray
    natural: np.ndarray
    edge_src: np.ndarray
    edge_dst: np.ndarray
    edge_segments: np.ndarray
    kl_terms: np.ndarray
    edge_teacher: np.ndarray
    edge_student: np.ndarray
    kl_limit: float
    mean_kl: np.ndarray
    self_p: np.ndarray
    self_q: np.ndarray

    @classmethod
    def from_fields(cls, fields: Fields, *, nodes: int | None = None, frames: int | None = None,
                    arrow_length: float = 0.6, edges_per_node: int | None = None) -> Layout:
        """Lay out ``nodes`` anchors (default: all, at most 12) at ``frames`` evenly spaced frames.

        ``arrow_length`` is the length, in petal sizes, that arrows approach for large
        displacements; ``edges_per_node`` the outgoing edges drawn per node (default: all up to
        :data:`ALL_EDGES_UP_TO` nodes, else :data:`EDGES_PER_NODE`).
        """
        index = frame_indices(fields.n_frames, frames)
        count = min(fields.n_points, 12) if nodes is None else nodes
        scores = None
        if isinstance(count, int) and count < fields.n_points:
            scores = kl_terms(fields.teacher[index], fields.student[index]).sum(-1).mean(0)
        chosen = select_nodes(fields.n_points, count, fields.labels, scores)
        teacher = restrict_rows(fields.teacher[index], chosen)
        student = restrict_rows(fields.student[index], chosen)
        node_xy = circle_layout(len(chosen))
        size = petal_size(len(chosen))
        vertices = petal_vertices(node_xy, size)
        neighbours = top_neighbours(0.5 * (teacher + student).mean(axis=0), PETAL_SIZE).numpy()
        p_petal = petal_projection(teacher, neighbours)
        q_petal = petal_projection(student, neighbours)
        natural = PETAL_SIZE * natural_direction(p_petal, q_petal)
        reach, knee = arrow_length * size, 0.04 * size
        others_p, others_q = without_self(teacher), without_self(student)
        n = len(chosen)
        per_node = (n - 1 if n <= ALL_EDGES_UP_TO else EDGES_PER_NODE) if edges_per_node is None \
            else check_int("edges_per_node", edges_per_node, low=1, high=n - 1)
        weight = np.maximum(others_p, others_q).max(axis=0)
        source, target, segments = edge_segments(node_xy, heaviest_edges(weight, per_node))
        edge_terms = kl_terms(others_p, others_q)[:, source, target]
        # a shared, symmetric colour scale; q = 0 where p > 0 gives an infinite term (clipped)
        finite = np.abs(edge_terms[np.isfinite(edge_terms)])
        limit = float(np.quantile(finite, _COLOUR_QUANTILE)) if finite.size else 0.0
        return cls(
            nodes=chosen, labels=None if fields.labels is None else fields.labels[chosen],
            steps=fields.steps[index], teacher=teacher, student=student, node_xy=node_xy,
            petal_size=size, extent=1.0 + _GAP + 2.0 * size + 0.06, petal_vertices=vertices,
            neighbours=neighbours, p_xy=simplex_to_plane(p_petal, vertices).numpy(),
            q_xy=simplex_to_plane(q_petal, vertices).numpy(),
            euclidean=arrow(simplex_to_plane(p_petal - q_petal, vertices).numpy(), reach, knee),
            natural=arrow(simplex_to_plane(natural, vertices).numpy(), reach, knee),
            edge_src=source, edge_dst=target, edge_segments=segments, kl_terms=edge_terms,
            edge_teacher=others_p[:, source, target], edge_student=others_q[:, source, target],
            kl_limit=limit if limit > 0 else 1.0,
            mean_kl=kl_terms(teacher, student).sum(-1).mean(-1),
            self_p=np.diagonal(teacher, axis1=1, axis2=2).copy(),
            self_q=np.diagonal(student, axis1=1, axis2=2).copy(),
        )

    @property
    def n_frames(self) -> int:
        """Number of frames laid out."""
        return self.teacher.shape[0]

    def edge_midpoint(self, i: int, j: int) -> np.ndarray:
        """Data coordinates of the middle of the drawn edge ``i -> j`` (node positions 0..n-1)."""
        index = np.flatnonzero((self.edge_src == i) & (self.edge_dst == j))
        if len(index) != 1:
            raise ValueError(f"no edge {i} -> {j} among {len(self.nodes)} nodes")
        return self.edge_segments[index[0]].mean(axis=0)
