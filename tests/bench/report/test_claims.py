"""Tests for rkdo.bench.report.claims: each verdict follows the synthetic numbers."""

from __future__ import annotations

import re

from rkdo.bench import paper


def test_verdicts_follow_the_numbers(synthetic) -> None:
    text = synthetic.text
    # training loss 30% lower everywhere: reproduced, but 10% higher on the common loss
    assert "30.0% to 30.0% lower (mean 30.0%)" in text
    assert "**reproduced**" in text
    assert "does not carry over" in text
    # icon's best linear 0.60 (5 epochs); rkdo crosses it between 1 (0.50) and 2 (0.70)
    # epochs at 1.5 epochs: 70% fewer epochs -> supported
    assert "after 1.5 epochs, 70% fewer" in text
    # rkdo at 2 epochs (0.70) vs icon at 5 (0.60): +0.1 exactly on every seed
    assert re.search(r"digits: \+0\.1000 \[\+0\.1000, \+0\.1000\], \*\*supported", text)
    # FLOPs: 1.002M vs 1.0M forward = +0.2% > 0.03%
    assert "+0.2000% FLOPs" in text and "**not reproduced** in counted FLOPs" in text


def test_the_papers_numbers_are_quoted_as_published(synthetic) -> None:
    text = synthetic.text
    assert "rkdo 0.3078 ± 0.037 vs icon 0.3291 ± 0.021 (icon ahead by 0.021" in text
    assert "(paper, STL-10: 0.2225 vs 0.2197)" in text
    assert "(paper: 9.5537 vs 9.5545 GFLOPs, ResNet-18, batch 64, 32 px" in text
    assert paper.early_vs_late("stl10", 2, 5) == "0.2225 vs 0.2197 (+0.0028)"
    assert paper.early_vs_late("cifar10", 5, 5) is None
