"""Tests of rkdo.geometry against direct matrix computations and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rkdo.geometry import (
    fisher_inner,
    fisher_metric,
    inverse_fisher,
    natural_direction,
    petal_projection,
    simplex_to_plane,
    top_neighbours,
)


def _dirichlet(shape: tuple[int, ...], k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(k), size=shape)


@pytest.mark.parametrize("k", [2, 3, 7])
def test_natural_direction_matches_matrix_product(k: int) -> None:
    p, q = _dirichlet((4, 5), k, 0), _dirichlet((4, 5), k, 1)
    got = natural_direction(torch.tensor(p), torch.tensor(q)).numpy()
    for a in range(4):
        for b in range(5):
            matrix = np.diag(q[a, b]) - np.outer(q[a, b], q[a, b])
            np.testing.assert_allclose(got[a, b], matrix @ (p[a, b] - q[a, b]), atol=1e-14)
    # the batched matrix agrees too
    via_matrix = (inverse_fisher(q) @ torch.tensor(p - q).unsqueeze(-1)).squeeze(-1).numpy()
    np.testing.assert_allclose(got, via_matrix, atol=1e-14)


def test_natural_direction_is_tangent_and_keeps_q_on_the_simplex() -> None:
    p, q = torch.tensor(_dirichlet((50,), 6, 2)), torch.tensor(_dirichlet((50,), 6, 3))
    d = natural_direction(p, q)
    assert d.sum(-1).abs().max() < 1e-15
    moved = q + 0.1 * d
    torch.testing.assert_close(moved.sum(-1), torch.ones(50, dtype=torch.float64))
    # |d_k| <= q_k |p_k - q_k| + q_k |<q, p-q>| <= 2 q_k, so q + 0.1 d stays positive
    assert bool((moved > 0).all())
    # at p = q there is nothing to move
    assert natural_direction(q, q).abs().max() == 0


def test_inverse_fisher_inverts_the_metric_on_tangent_vectors() -> None:
    q = torch.tensor(_dirichlet((8,), 5, 4))
    u = torch.randn(8, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    u = u - u.mean(-1, keepdim=True)
    roundtrip = inverse_fisher(q) @ fisher_metric(q) @ u.unsqueeze(-1)
    torch.testing.assert_close(roundtrip.squeeze(-1), u)
    # the metric is diag(1/q): g(u, u) = sum u^2 / q
    torch.testing.assert_close(fisher_inner(u, u, q), (u.square() / q).sum(-1))


def test_natural_direction_represents_the_euclidean_pairing_in_the_fisher_metric() -> None:
    # g_q(F^-1 (p - q), v) = <p - q, v> for every tangent v: d is the Fisher gradient
    p, q = torch.tensor(_dirichlet((10,), 4, 5)), torch.tensor(_dirichlet((10,), 4, 6))
    v = torch.randn(10, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    v = v - v.mean(-1, keepdim=True)
    torch.testing.assert_close(fisher_inner(natural_direction(p, q), v, q),
                               ((p - q) * v).sum(-1))


def test_natural_direction_is_the_softmax_response_and_descends_kl() -> None:
    p = torch.tensor(_dirichlet((6,), 5, 7))
    theta = torch.randn(6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    q = torch.softmax(theta, -1)
    # how q moves when the logits step along p - q (= -grad_theta KL(p || softmax theta))
    _, response = torch.autograd.functional.jvp(lambda t: torch.softmax(t, -1), theta, p - q)
    torch.testing.assert_close(natural_direction(p, q), response)
    # directional derivative of KL(p || q) along d is -|p - q|^2 (closed form)
    q_var = q.clone().requires_grad_(True)
    kl = (p * (p.log() - q_var.log())).sum()
    (grad,) = torch.autograd.grad(kl, q_var)
    slope = (grad * natural_direction(p, q)).sum(-1)
    torch.testing.assert_close(slope, -(p - q).square().sum(-1))


def test_natural_direction_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="same shape"):
        natural_direction(torch.ones(3) / 3, torch.ones(4) / 4)


def test_top_neighbours_matches_argsort_and_skips_self() -> None:
    rng = np.random.default_rng(8)
    w = rng.random((7, 7))
    got = top_neighbours(w, 3).numpy()
    for i in range(7):
        row = w[i].copy()
        row[i] = -np.inf
        np.testing.assert_array_equal(got[i], np.argsort(-row)[:3])
    # ties go to the lower index; the diagonal is never picked even when it is largest
    ties = np.eye(5) * 10 + 1.0
    np.testing.assert_array_equal(top_neighbours(ties, 2).numpy()[0], [1, 2])
    np.testing.assert_array_equal(top_neighbours(ties, 2, exclude_self=False).numpy()[0], [0, 1])
    with pytest.raises(ValueError, match="k must lie in"):
        top_neighbours(w, 7)
    with pytest.raises(ValueError, match="square"):
        top_neighbours(w[:3], 2)


def test_petal_projection_renormalises_over_the_neighbours() -> None:
    rng = np.random.default_rng(9)
    frames = rng.dirichlet(np.ones(6), size=(2, 6))  # (F, N, N)
    neighbours = np.array([[1, 2, 3], [0, 5, 4], [0, 1, 3], [5, 4, 2], [3, 2, 1], [0, 1, 2]])
    got = petal_projection(frames, neighbours).numpy()
    for f in range(2):
        for i in range(6):
            picked = frames[f, i, neighbours[i]]
            np.testing.assert_allclose(got[f, i], picked / picked.sum(), rtol=1e-12)
    # a row with no mass on its neighbours sits at the centre of the petal
    empty = np.eye(3)
    np.testing.assert_allclose(petal_projection(empty, [[1, 2], [0, 2], [0, 1]]).numpy(),
                               np.full((3, 2), 0.5))


def test_simplex_to_plane_is_the_barycentric_map() -> None:
    vertices = torch.tensor([[0.0, 1.0], [-0.8, -0.5], [0.8, -0.5]], dtype=torch.float64)
    torch.testing.assert_close(simplex_to_plane(torch.eye(3, dtype=torch.float64), vertices),
                               vertices)
    centre = simplex_to_plane(torch.full((3,), 1 / 3, dtype=torch.float64), vertices)
    torch.testing.assert_close(centre, vertices.mean(0))
    # batched vertices: one triangle per row
    batch = torch.stack([vertices, vertices + 2.0])
    weights = torch.tensor([[0.2, 0.3, 0.5], [0.2, 0.3, 0.5]], dtype=torch.float64)
    expected = torch.stack([weights[0] @ vertices, weights[1] @ (vertices + 2.0)])
    torch.testing.assert_close(simplex_to_plane(weights, batch), expected)
