"""A small, deterministic simulation of RKDO's recursion over time, for pictures and intuition.

``N`` points ``z_i`` in ``D`` dimensions (drawn around a few cluster centres) are the embeddings
of ``N`` samples. At frame ``t`` the student is the cosine kernel on the current points and the
teacher is the temporal recursion of the student field:

    q(t)(j|i) = softmax_j( cos(z_i, z_j) / tau )
    p(0)      = (1 - a) I + a / N                   (augmentation pairs, debiased by a)
    p(t+1)    = (1 - alpha) p(t) + alpha q(t)

Between frames the points take ``steps_per_frame`` SGD steps (learning rate ``lr``) on the
two-view I-Con loss against the current teacher,

    L = 1/N sum_i KL( p(t)(.|i) || softmax_j( cos(v1_i, v2_j) / tau ) ),   v = z + jitter * eps,

where ``v1, v2`` are two Gaussian "augmentations" of the points. The teacher is a constant
target within a frame (no gradient flows into it). Everything is drawn from one
``torch.Generator`` seeded with ``seed``, so a seed gives the same frames bit for bit.

The kernels and the KL come from the core (:mod:`rkdo.kernels`, :mod:`rkdo.functional`);
``Simulation.fields`` is a :class:`rkdo.fields.Fields`, saved like a training run's
``fields.npz`` by :func:`rkdo.fields.save_fields`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rkdo._validation import check_int, check_positive, check_unit_interval
from rkdo.fields import Fields
from rkdo.functional import kl_rows, log_mix
from rkdo.kernels import Augmentation, Cosine
from rkdo.neighbourhood import build_neighbourhood

__all__ = ["Simulation", "simulate"]

_DTYPE = torch.float64


@dataclass
class Simulation:
    """Frames of a simulated RKDO run.

    Attributes:
        steps: ``(F,)`` optimisation step at which each frame was recorded.
        teacher: ``(F, N, N)`` row-stochastic teacher field ``p(t)(j|i)``.
        student: ``(F, N, N)`` row-stochastic student field ``q(t)(j|i)``.
        positions: ``(F, N, D)`` the points ``z_i`` at each frame.
        labels: ``(N,)`` the cluster each point was drawn around.
        loss: ``(F,)`` ``1/N sum_i KL(p(t)(.|i) || q(t)(.|i))`` at each frame.
        config: the arguments of :func:`simulate`.
    """

    steps: np.ndarray
    teacher: np.ndarray
    student: np.ndarray
    positions: np.ndarray
    labels: np.ndarray
    loss: np.ndarray
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def fields(self) -> Fields:
        """The teacher and student fields with the steps and labels, as a run records them."""
        return Fields(self.teacher, self.student, self.steps, self.labels)


def simulate(
    n_points: int = 12,
    dim: int = 3,
    *,
    clusters: int = 3,
    spread: float = 0.6,
    jitter: float = 0.2,
    temperature: float = 0.2,
    alpha: float = 0.05,
    lr: float = 1.0,
    frames: int = 50,
    steps_per_frame: int = 1,
    debias: float = 0.2,
    seed: int = 0,
) -> Simulation:
    """Run the simulation described in the module docstring.

    Args:
        n_points: number of points ``N >= 2``.
        dim: their dimension ``D >= 2``.
        clusters: number of cluster centres the points are drawn around (``1..N``); point ``i``
            belongs to cluster ``i * clusters // N``, so clusters are contiguous index ranges.
        spread: standard deviation of the points around their centre (centres are unit vectors).
        jitter: standard deviation of the Gaussian augmentation of each view (0: identical views).
        temperature: ``tau`` of the cosine kernel.
        alpha: teacher update rate per frame, in [0, 1].
        lr: SGD learning rate on the points.
        frames: number of frames ``F >= 1``.
        steps_per_frame: SGD steps between two frames (0: the points never move).
        debias: uniform leak ``a`` of the initial teacher, in [0, 1).
        seed: seed of the generator; the same seed gives the same frames.
    """
    config = _checked_config(n_points=n_points, dim=dim, clusters=clusters, spread=spread,
                             jitter=jitter, temperature=temperature, alpha=alpha, lr=lr,
                             frames=frames, steps_per_frame=steps_per_frame, debias=debias,
                             seed=seed)
    generator = torch.Generator().manual_seed(config["seed"])
    student_kernel = Cosine(config["temperature"])
    points, labels = _initial_points(config, generator)
    start = build_neighbourhood(points.detach(), points.detach(), form="pair")
    log_teacher = Augmentation().leak(config["debias"]).log_prob(start)

    teachers, students, positions, losses = _frames(points, log_teacher, student_kernel, config,
                                                    generator)
    return Simulation(
        steps=np.arange(config["frames"], dtype=np.int64) * config["steps_per_frame"],
        teacher=teachers, student=students, positions=positions,
        labels=labels.numpy().astype(np.int64), loss=losses, config=config,
    )


def _frames(points: torch.Tensor, log_teacher: torch.Tensor, kernel: Cosine,
            config: dict[str, Any], generator: torch.Generator) -> list[np.ndarray]:
    """Teacher fields, student fields, positions and losses of each frame, stacked; between
    frames ``steps_per_frame`` SGD steps, then the teacher update ``p <- (1-alpha) p + alpha q``.
    """
    teachers, students, positions, losses = [], [], [], []
    for _ in range(config["frames"]):
        with torch.no_grad():
            clean = points.detach()
            log_student = kernel.log_prob(build_neighbourhood(clean, clean, form="pair"))
        teachers.append(log_teacher.exp())
        students.append(log_student.exp())
        positions.append(clean.clone())
        losses.append(kl_rows(log_teacher, log_student).mean())
        for _ in range(config["steps_per_frame"]):
            _sgd_step(points, log_teacher, kernel, config, generator)
        log_teacher = log_mix(log_teacher, log_student, config["alpha"])
    return [torch.stack(rows).numpy() for rows in (teachers, students, positions, losses)]


def _checked_config(**arguments: Any) -> dict[str, Any]:
    """The arguments of :func:`simulate`, checked and in their canonical types."""
    config = dict(arguments)
    for name, low in (("n_points", 2), ("dim", 2), ("clusters", 1), ("frames", 1),
                      ("steps_per_frame", 0)):
        config[name] = check_int(name, config[name], low)
    if config["clusters"] > config["n_points"]:
        raise ValueError(f"clusters must lie in [1, n_points={config['n_points']}], "
                         f"got {config['clusters']}")
    for name in ("spread", "jitter", "lr"):
        config[name] = check_positive(name, config[name], allow_zero=True)
    config["alpha"] = check_unit_interval("alpha", config["alpha"])
    config["debias"] = check_unit_interval("debias", config["debias"], high_open=True)
    config["seed"] = int(config["seed"])
    return config


def _initial_points(config: dict[str, Any],
                    generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Points around unit-vector centres (leaf tensor with gradient) and their cluster labels."""
    n_points, dim, clusters = config["n_points"], config["dim"], config["clusters"]
    centres = torch.nn.functional.normalize(
        torch.randn(clusters, dim, generator=generator, dtype=_DTYPE), dim=-1
    )
    labels = torch.arange(n_points) * clusters // n_points
    noise = torch.randn(n_points, dim, generator=generator, dtype=_DTYPE)
    points = centres[labels] + config["spread"] * noise
    return points.requires_grad_(True), labels


def _sgd_step(points: torch.Tensor, log_teacher: torch.Tensor, kernel: Cosine,
              config: dict[str, Any], generator: torch.Generator) -> None:
    """One SGD step of ``points`` (in place) on the two-view I-Con loss against the teacher."""
    jitter = config["jitter"]
    view1 = points + jitter * torch.randn(points.shape, generator=generator, dtype=_DTYPE)
    view2 = points + jitter * torch.randn(points.shape, generator=generator, dtype=_DTYPE)
    log_q = kernel.log_prob(build_neighbourhood(view1, view2, form="pair"))
    (gradient,) = torch.autograd.grad(kl_rows(log_teacher, log_q).mean(), points)
    with torch.no_grad():  # plain SGD (torch.optim would import torch._dynamo: seconds)
        points -= config["lr"] * gradient
