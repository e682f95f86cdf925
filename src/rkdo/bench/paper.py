"""The paper's published numbers, written once (MISSION.md): the report compares against these.

Keys use roles, not method names: ``"treatment"`` is RKDO, ``"baseline"`` is I-Con.

    LOSS_REDUCTION_PERCENT  RKDO's final training loss is 27-34% lower than I-Con's
    EPOCHS_SAVED_PERCENT    RKDO needs 60-80% fewer epochs to reach I-Con's quality
    LINEAR_EVAL             linear evaluation (dataset, role, epochs) -> mean [± std]
    FORWARD_GFLOPS          forward GFLOPs per step by recursion depth, at PROFILE_SETTING
    FLOP_OVERHEAD_PERCENT   the recursion's claimed FLOP overhead bound
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Published", "LOSS_REDUCTION_PERCENT", "EPOCHS_SAVED_PERCENT", "LINEAR_EVAL",
           "FORWARD_GFLOPS", "FLOP_OVERHEAD_PERCENT", "PROFILE_SETTING", "early_vs_late",
           "percent_range", "gflops_text"]


@dataclass(frozen=True)
class Published:
    """A published value: a mean over seeds, with the std when the paper gives one."""

    mean: float
    std: float | None = None

    def __str__(self) -> str:
        return f"{self.mean:.4f}" + ("" if self.std is None else f" ± {self.std:.3f}")


LOSS_REDUCTION_PERCENT = (27.0, 34.0)
EPOCHS_SAVED_PERCENT = (60.0, 80.0)
LINEAR_EVAL: dict[tuple[str, str, int], Published] = {
    ("cifar10", "treatment", 5): Published(0.3078, 0.037),
    ("cifar10", "baseline", 5): Published(0.3291, 0.021),
    ("stl10", "treatment", 2): Published(0.2225),
    ("stl10", "baseline", 5): Published(0.2197),
}
FORWARD_GFLOPS: dict[int, float] = {1: 9.5537, 3: 9.5545}
FLOP_OVERHEAD_PERCENT = 0.03
PROFILE_SETTING = "ResNet-18, batch 64, 32 px"


def percent_range(bounds: tuple[float, float]) -> str:
    """``(27.0, 34.0)`` -> ``"27-34%"``."""
    return f"{bounds[0]:.0f}-{bounds[1]:.0f}%"


def gflops_text() -> str:
    """``"9.5537 (depth 1) vs 9.5545 (depth 3)"``."""
    return " vs ".join(f"{gflops} (depth {depth})" for depth, gflops in FORWARD_GFLOPS.items())


def early_vs_late(dataset: str, early: int, late: int) -> str | None:
    """The paper's treatment at ``early`` epochs vs baseline at ``late``, if it gives both."""
    treatment = LINEAR_EVAL.get((dataset, "treatment", early))
    baseline = LINEAR_EVAL.get((dataset, "baseline", late))
    if early >= late or treatment is None or baseline is None:
        return None
    return f"{treatment} vs {baseline} ({treatment.mean - baseline.mean:+.4f})"
