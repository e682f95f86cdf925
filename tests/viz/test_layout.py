"""Tests of rkdo.viz.layout: node choice, chords, petals and arrows against direct computations."""

from __future__ import annotations

import numpy as np
import pytest

from rkdo.fields import Fields
from rkdo.geometry import natural_direction
from rkdo.viz.layout import (
    Layout,
    circle_layout,
    frame_indices,
    kl_terms,
    select_nodes,
    without_self,
)


def test_edges_run_left_of_their_chords_and_petals_hold_the_restricted_rows(circulant) -> None:
    fields = circulant.fields()
    layout = Layout.from_fields(fields)
    # edge i -> j runs on the left of the chord from node i to node j
    for i, j in [(0, 1), (1, 0), (2, 5), (5, 2)]:
        chord = layout.node_xy[j] - layout.node_xy[i]
        side = layout.edge_midpoint(i, j) - layout.node_xy[i]
        assert chord[0] * side[1] - chord[1] * side[0] > 0
    # petal vertices: the top-3 neighbours by time-averaged (p + q)/2 are i+1, i+2, i+3
    np.testing.assert_array_equal(layout.neighbours[0], [1, 2, 3])
    for frame in range(2):
        for i in range(circulant.N):
            # the teacher and student points are the barycentric images of the restricted rows
            neighbours = layout.neighbours[i]
            p = fields.teacher[frame, i, neighbours] / fields.teacher[frame, i, neighbours].sum()
            q = fields.student[frame, i, neighbours] / fields.student[frame, i, neighbours].sum()
            np.testing.assert_allclose(layout.p_xy[frame, i], p @ layout.petal_vertices[i],
                                       atol=1e-12)
            np.testing.assert_allclose(layout.q_xy[frame, i], q @ layout.petal_vertices[i],
                                       atol=1e-12)
    with pytest.raises(ValueError, match="no edge"):
        layout.edge_midpoint(0, 0)


def test_arrows_point_along_p_minus_q_and_the_natural_direction(circulant) -> None:
    fields = circulant.fields()
    layout = Layout.from_fields(fields)
    neighbours = layout.neighbours[0]
    p = fields.teacher[0, 0, neighbours] / fields.teacher[0, 0, neighbours].sum()
    q = fields.student[0, 0, neighbours] / fields.student[0, 0, neighbours].sum()
    vertices = layout.petal_vertices[0]
    euclidean = (p - q) @ vertices
    natural = natural_direction(p, q).numpy() @ vertices

    def unit(v):
        return v / np.linalg.norm(v)

    np.testing.assert_allclose(unit(layout.euclidean[0, 0]), unit(euclidean), atol=1e-12)
    np.testing.assert_allclose(unit(layout.natural[0, 0]), unit(natural), atol=1e-12)
    # drawn length L m / (m + m0) with L = 0.6 petal sizes, m0 = 4% of a petal
    m, size = np.linalg.norm(euclidean), layout.petal_size
    np.testing.assert_allclose(np.linalg.norm(layout.euclidean[0, 0]),
                               0.6 * size * m / (m + 0.04 * size), rtol=1e-12)


def test_edge_terms_are_the_kl_terms_and_the_mean_is_the_kl(circulant) -> None:
    fields = circulant.fields()
    layout = Layout.from_fields(fields)
    p, q = fields.teacher, fields.student
    off = ~np.eye(circulant.N, dtype=bool)
    # edges: the rows conditioned on j != i; the mean KL: the whole rows
    po, qo = (np.where(off, f, 0) / np.where(off, f, 0).sum(-1, keepdims=True) for f in (p, q))
    terms = po[:, off] * np.log(po[:, off] / qo[:, off])
    np.testing.assert_allclose(layout.kl_terms, terms, atol=1e-15)
    np.testing.assert_allclose(layout.mean_kl, (p * np.log(p / q)).sum(-1).mean(-1), rtol=1e-12)
    np.testing.assert_allclose(layout.kl_limit, np.quantile(np.abs(terms), 0.98))
    np.testing.assert_allclose(layout.self_p, p[:, 0, 0][:, None].repeat(circulant.N, 1))
    np.testing.assert_allclose(layout.self_q, q[:, 0, 0][:, None].repeat(circulant.N, 1))
    # p = 0 contributes nothing, q = 0 under p > 0 is infinite
    np.testing.assert_array_equal(kl_terms(np.array([0.0, 0.5]), np.array([0.0, 0.0])),
                                  [0.0, np.inf])


def test_node_selection_and_circle() -> None:
    np.testing.assert_array_equal(select_nodes(10, 4), [0, 1, 2, 3])
    labels = np.array([2, 0, 0, 1, 1, 1, 0, 2, 2, 2])
    # round-robin over classes 0, 1, 2: 1, 3, 0 then 2, 4, 7; sorted by (label, index)
    np.testing.assert_array_equal(select_nodes(10, 6, labels), [1, 2, 3, 4, 0, 7])
    with pytest.raises(ValueError, match="nodes must be"):
        select_nodes(6, 7)
    with pytest.raises(ValueError, match="nodes must be"):
        select_nodes(6, 3)
    xy = circle_layout(4)
    np.testing.assert_allclose(xy, [[0, 1], [1, 0], [0, -1], [-1, 0]], atol=1e-12)


def test_subset_of_probes_is_renormalised_per_row() -> None:
    rng = np.random.default_rng(0)
    teacher = rng.dirichlet(np.ones(9), size=(3, 9))
    student = rng.dirichlet(np.ones(9), size=(3, 9))
    layout = Layout.from_fields(Fields(teacher, student, np.arange(3)), nodes=5)
    block = teacher[:, layout.nodes][:, :, layout.nodes]
    np.testing.assert_allclose(layout.teacher, block / block.sum(-1, keepdims=True))


def test_a_large_recording_draws_the_most_differing_anchors_and_few_edges() -> None:
    """A real run's kaleidoscope drew identical panels and every pair as a hairball: anchors
    are now chosen where teacher and student differ, and only each node's heaviest edges."""
    rng = np.random.default_rng(0)
    n, labels = 30, np.arange(30) % 3
    student = rng.dirichlet(np.ones(n), size=(2, n))
    teacher = student.copy()
    differ = [3, 4, 6, 7, 11, 20]  # two per class differ; the rest have p = q
    teacher[:, differ] = rng.dirichlet(np.ones(n), size=(2, len(differ)))
    layout = Layout.from_fields(Fields(teacher, student, np.arange(2), labels), nodes=6)
    np.testing.assert_array_equal(np.sort(layout.nodes), differ)
    assert layout.mean_kl.min() > 0
    many = Layout.from_fields(Fields(teacher, student, np.arange(2), labels), nodes=12)
    assert len(many.edge_src) == 12 * 3  # three edges per node, not 12 * 11
    expected = np.maximum(many.edge_teacher, many.edge_student).max(0)
    for node in range(12):
        weights = np.maximum(without_self(many.teacher), without_self(many.student)).max(0)[node]
        weights[node] = -1
        assert set(many.edge_dst[many.edge_src == node]) == set(np.argsort(-weights)[:3])
    assert expected.min() > 0


def test_frames_are_evenly_spaced_with_both_ends() -> None:
    np.testing.assert_array_equal(frame_indices(5, 3), [0, 2, 4])
    np.testing.assert_array_equal(frame_indices(5, None), np.arange(5))
    np.testing.assert_array_equal(frame_indices(5, 9), np.arange(5))
    with pytest.raises(ValueError, match="frames must be an integer >= 1"):
        frame_indices(5, 0)
