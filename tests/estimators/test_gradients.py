"""Costs against independent references: scikit-learn's exact t-SNE and brute force sums."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist, squareform
from sklearn.datasets import load_digits
from sklearn.manifold._t_sne import _joint_probabilities, _kl_divergence

from rkdo.estimators._affinity import SparseJoint, joint_dense, joint_sparse
from rkdo.estimators._gradients import DenseCost, SparseCost
from rkdo.estimators._interpolation import repulsion
from rkdo.kernels import StudentT


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return load_digits().data[:300].astype(np.float64)


def _sklearn_case(digits: np.ndarray, dof: float, n: int):
    condensed = _joint_probabilities(squareform(pdist(digits[:n], "sqeuclidean")), 20.0, 0)
    y = np.random.default_rng(0).normal(scale=3.0, size=(n, 2))
    objective = DenseCost(torch.from_numpy(squareform(condensed)).log(), StudentT(dof),
                               joint=True)
    return condensed, y, objective


@pytest.mark.parametrize("dof", [1.0, 0.6, 3.0])
def test_exact_tsne_value_equals_sklearn(digits: np.ndarray, dof: float) -> None:
    condensed, y, objective = _sklearn_case(digits, dof, 300)
    reference, reference_grad = _kl_divergence(y.ravel(), condensed, dof, len(y), 2)
    kl, grad = objective.gradient(torch.from_numpy(y))
    assert kl == pytest.approx(reference, abs=1e-8, rel=1e-10)
    if dof == 1.0:
        np.testing.assert_allclose(grad.numpy().ravel(), reference_grad, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("dof", [0.6, 3.0])
def test_exact_tsne_gradient_is_the_derivative_of_sklearns_value(digits: np.ndarray,
                                                                  dof: float) -> None:
    # scikit-learn's gradient weights (P - Q) by w instead of (1 + d^2 / dof)^-1, which is
    # the derivative only at dof = 1; central differences of its value are the reference here
    condensed, y, objective = _sklearn_case(digits, dof, 60)
    _, grad = objective.gradient(torch.from_numpy(y))
    step = 1e-6
    numeric = np.empty(y.size)
    for k in range(y.size):
        shift = np.zeros(y.size)
        shift[k] = step
        up = _kl_divergence(y.ravel() + shift, condensed, dof, len(y), 2)[0]
        down = _kl_divergence(y.ravel() - shift, condensed, dof, len(y), 2)[0]
        numeric[k] = (up - down) / (2 * step)
    np.testing.assert_allclose(grad.numpy().ravel(), numeric, rtol=1e-5, atol=1e-8)


def test_joint_dense_matches_sklearn(digits: np.ndarray) -> None:
    reference = squareform(_joint_probabilities(squareform(pdist(digits, "sqeuclidean")), 20.0, 0))
    ours = joint_dense(torch.from_numpy(digits), 20.0).numpy()
    np.testing.assert_allclose(ours, reference, atol=1e-6 / len(digits) ** 2, rtol=1e-4)


@pytest.mark.parametrize("dof", [1.0, 0.5])
@pytest.mark.parametrize("scale", [1e-3, 1.0])
def test_repulsion_matches_brute_force(dof: float, scale: float) -> None:
    generator = torch.Generator().manual_seed(0)
    y = torch.randn(1500, 2, dtype=torch.float64, generator=generator) * scale
    base = (1.0 + torch.cdist(y, y).square() / dof).reciprocal()
    w = base.pow(0.5 * (dof + 1.0))
    z = w.sum() - len(y)
    r = (w * base).sum(1, keepdim=True) * y - (w * base) @ y
    r_fft, z_fft = repulsion(y, dof=dof)
    assert float(z_fft) == pytest.approx(float(z), rel=1e-5)
    assert float((r_fft - r).norm() / r.norm()) < 1e-3


def test_sparse_objective_matches_dense_on_same_p(digits: np.ndarray) -> None:
    affinity = joint_sparse(digits, 10.0, 30, 0)
    n = affinity.n
    square = torch.zeros(n, n, dtype=torch.float64)
    rows, cols = torch.from_numpy(affinity.rows), torch.from_numpy(affinity.cols)
    values = torch.from_numpy(affinity.values)
    square[rows, cols] = values
    square[cols, rows] = values
    assert float(square.sum()) == pytest.approx(1.0)
    y = torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    dense_kl, dense_grad = DenseCost(square.log(), StudentT(), joint=True).gradient(y, 4.0)
    sparse = SparseCost(affinity, 1.0, torch.device("cpu"), torch.float64)
    sparse_kl, sparse_grad = sparse.gradient(y, 4.0)
    assert sparse_kl == pytest.approx(dense_kl, rel=1e-5)
    assert float((sparse_grad - dense_grad).norm() / dense_grad.norm()) < 1e-3


def test_sparse_teacher_keeps_p_normalised() -> None:
    affinity = SparseJoint(np.array([0, 0, 1]), np.array([1, 2, 2]),
                           np.array([0.2, 0.2, 0.1]), 3)
    objective = SparseCost(affinity, 1.0, torch.device("cpu"), torch.float64)
    y = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    objective.gradient(y)
    objective.teacher_step(0.5)
    assert float(2.0 * objective.values.sum()) == pytest.approx(1.0)
    assert not torch.equal(objective.values, objective.values0)


def test_sparse_cost_is_finite_where_p_underflows_float32() -> None:
    # issue 17, bug 1: well-separated blobs give P entries below float32's smallest subnormal;
    # the KL of the float32 cost must still equal the float64 dense KL on the same P
    from sklearn.datasets import make_blobs

    x = make_blobs(n_samples=400, centers=20, cluster_std=1, center_box=(-12, 12),
                   n_features=10, random_state=0)[0]
    affinity = joint_sparse(x, 10.0, 30, 0)
    assert (affinity.values < 1e-45).any()
    n = affinity.n
    square = torch.zeros(n, n, dtype=torch.float64)
    rows, cols = torch.from_numpy(affinity.rows), torch.from_numpy(affinity.cols)
    square[rows, cols] = torch.from_numpy(affinity.values)
    square[cols, rows] = torch.from_numpy(affinity.values)
    y = torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    dense_kl, _ = DenseCost(square.log(), StudentT(), joint=True).gradient(y)
    sparse = SparseCost(affinity, 1.0, torch.device("cpu"))
    sparse_kl, grad = sparse.gradient(y.float())
    assert sparse_kl == pytest.approx(dense_kl, rel=1e-4)
    assert sparse.static_kl(y.float()) == pytest.approx(dense_kl, rel=1e-4)
    assert torch.isfinite(grad).all()


def test_default_path_survives_underflowing_p() -> None:
    # issue 17's reproduction: NaN at iteration 0 on the default (fft) path, and on iris
    from sklearn.datasets import load_iris, make_blobs

    from rkdo.estimators import NeighbourEmbedding

    x = make_blobs(n_samples=2000, centers=40, cluster_std=1, center_box=(-12, 12),
                   n_features=10, random_state=0)[0]
    for data, method in ((x, "auto"), (load_iris().data, "fft")):
        model = NeighbourEmbedding(random_state=0, method=method, max_iter=3).fit(data)
        assert np.isfinite(model.kl_divergence_) and np.isfinite(model.embedding_).all()


def test_grid_is_capped_and_fft_friendly() -> None:
    # issue 17, bug 2: the grid grew with the square of the span; now at most 1.11 B(n) boxes
    from rkdo.estimators._interpolation import _grid, _smooth, max_boxes

    assert [_smooth(k) for k in (7, 47, 50, 94, 141, 1001)] == [8, 48, 50, 96, 144, 1024]
    for n, span in ((50, 644.0), (50, 1e6), (2000, 300.0), (70_000, 150.0)):
        boxes, spacing = _grid(span, n, 3, 50, 1.0)
        assert boxes <= 1.11 * max_boxes(n)
        assert boxes * 3 * spacing >= span  # the grid covers the points
    assert _grid(150.0, 70_000, 3, 50, 1.0) == (150, 1.0 / 3)  # below the cap: boxes 1 wide


def test_repulsion_exact_for_few_points_at_any_span() -> None:
    # the 50 points of scikit-learn's learning_rate=100 test reach a span of ~600
    y = torch.rand(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 600
    diff = y[:, None, :] - y[None, :, :]
    w = (1.0 + diff.square().sum(-1)).reciprocal()
    r_fft, z_fft = repulsion(y)
    assert float(z_fft) == pytest.approx(float(w.sum() - 50), rel=1e-12)
    torch.testing.assert_close(r_fft, ((w * w)[:, :, None] * diff).sum(1), rtol=1e-10, atol=0)


def test_fused_attraction_equals_torch_path(digits: np.ndarray) -> None:
    affinity = joint_sparse(digits, 10.0, 30, 0)
    y = torch.randn(affinity.n, 2, generator=torch.Generator().manual_seed(4)) * 5
    fused = SparseCost(affinity, 0.7, torch.device("cpu"))
    plain = SparseCost(affinity, 0.7, torch.device("cpu"))
    plain._fused = False
    (kl_f, grad_f), (kl_p, grad_p) = fused.gradient(y, 3.0), plain.gradient(y, 3.0)
    assert kl_f == pytest.approx(kl_p, rel=1e-5)
    torch.testing.assert_close(grad_f, grad_p, rtol=1e-4, atol=1e-9)
    for cost, grad in ((fused, grad_f), (plain, grad_p)):  # without the KL: same gradient
        kl, same = cost.gradient(y, 3.0, value=False)
        assert math.isnan(kl) and torch.equal(same, grad)
