"""Tests of rkdo.viz.simulate against an independent numpy re-derivation of each frame."""

from __future__ import annotations

import numpy as np
import pytest

from rkdo.fields import save_fields
from rkdo.viz.simulate import simulate


def _cosine_softmax(points: np.ndarray, temperature: float) -> np.ndarray:
    unit = points / np.linalg.norm(points, axis=-1, keepdims=True)
    logits = unit @ unit.T / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=-1, keepdims=True)


def _mean_kl(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.sum(p * (np.log(p) - np.log(q)), axis=-1).mean())


def test_same_seed_same_frames_other_seed_other_frames() -> None:
    first = simulate(n_points=6, dim=3, frames=8, seed=3)
    again = simulate(n_points=6, dim=3, frames=8, seed=3)
    other = simulate(n_points=6, dim=3, frames=8, seed=4)
    for name in ("teacher", "student", "positions", "loss", "steps", "labels"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.allclose(first.student, other.student)
    assert first.teacher.shape == first.student.shape == (8, 6, 6)
    assert first.positions.shape == (8, 6, 3)
    np.testing.assert_array_equal(first.steps, np.arange(8))


def test_frames_follow_the_recursion_and_the_cosine_student() -> None:
    alpha, temperature, debias, n = 0.2, 0.3, 0.1, 7
    sim = simulate(n_points=n, dim=4, clusters=2, alpha=alpha, temperature=temperature,
                   debias=debias, frames=6, seed=1)
    # p(0) = (1 - a) I + a / N
    np.testing.assert_allclose(sim.teacher[0], (1 - debias) * np.eye(n) + debias / n, atol=1e-12)
    for t in range(6):
        np.testing.assert_allclose(sim.student[t], _cosine_softmax(sim.positions[t], temperature),
                                   rtol=1e-10)
        np.testing.assert_allclose(sim.loss[t], _mean_kl(sim.teacher[t], sim.student[t]),
                                   rtol=1e-10)
    for t in range(5):
        np.testing.assert_allclose(sim.teacher[t + 1],
                                   (1 - alpha) * sim.teacher[t] + alpha * sim.student[t],
                                   rtol=1e-10)
    np.testing.assert_allclose(sim.teacher.sum(-1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(sim.labels, [0, 0, 0, 0, 1, 1, 1])


def test_points_take_one_sgd_step_on_the_kl_between_frames() -> None:
    # without jitter the two views coincide, so the step is -lr * grad of the frame's loss
    lr, temperature = 0.7, 0.4
    sim = simulate(n_points=5, dim=3, jitter=0.0, lr=lr, temperature=temperature, frames=2,
                   seed=2)
    start, teacher = sim.positions[0], sim.teacher[0]
    gradient = np.zeros_like(start)
    h = 1e-6
    for index in np.ndindex(start.shape):
        plus, minus = start.copy(), start.copy()
        plus[index] += h
        minus[index] -= h
        gradient[index] = (_mean_kl(teacher, _cosine_softmax(plus, temperature))
                           - _mean_kl(teacher, _cosine_softmax(minus, temperature))) / (2 * h)
    np.testing.assert_allclose(sim.positions[1], start - lr * gradient, atol=1e-7)


def test_the_student_and_teacher_meet() -> None:
    sim = simulate(frames=40, seed=0)
    assert sim.loss[-1] < 0.1 * sim.loss[0]
    frozen = simulate(n_points=5, frames=3, steps_per_frame=0, seed=0)
    np.testing.assert_array_equal(frozen.positions[0], frozen.positions[-1])


def test_save_fields_writes_the_run_format(tmp_path) -> None:
    sim = simulate(n_points=5, frames=3, seed=0)
    path = save_fields(tmp_path / "fields.npz", sim.fields)
    with np.load(path) as data:
        assert data["teacher"].dtype == np.float32 and data["steps"].dtype == np.int64
        np.testing.assert_allclose(data["student"], sim.student, rtol=1e-6)
        np.testing.assert_array_equal(data["labels"], sim.labels)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_points": 1}, "n_points"),
        ({"clusters": 20}, "clusters"),
        ({"alpha": 1.5}, "alpha"),
        ({"debias": 1.0}, "debias"),
        ({"frames": 0}, "frames"),
        ({"jitter": -1.0}, "jitter"),
        ({"temperature": 0.0}, "temperature"),
    ],
)
def test_bad_arguments_name_the_parameter(options, message) -> None:
    with pytest.raises(ValueError, match=message):
        simulate(**options)
