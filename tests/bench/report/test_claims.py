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


def _rewrite(store, old: str, new: str, seeds: tuple[int, ...] | None = None) -> None:
    """Change the store's grid text (keeping its hash in store.json) and drop seeds."""
    import json

    from rkdo import bench

    grid_file = store / bench.GRID_FILE
    grid = bench.parse_grid(grid_file.read_text().replace(old, new))
    grid_file.write_text(grid.text)
    (store / bench.STORE_FILE).write_text(json.dumps({"grid_name": grid.name,
                                                      "grid_hash": grid.hash}))
    results = store / bench.RESULTS_FILE
    records = [json.loads(line) for line in results.read_text().splitlines()]
    for record in records:
        if "config" in record and old.split(" =")[0] in record["config"]:
            record["config"][old.split(" =")[0]] = grid.settings[old.split(" =")[0]]
    if seeds is not None:
        records = [r for r in records if r.get("seed") is None or r["seed"] in seeds]
    results.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_too_few_seeds_or_steps_are_not_judged(tmp_path, store_maker) -> None:
    """digits-smoke printed **reproduced** from 2 seeds of 3-batch epochs: numbers that mean
    nothing. Such a store shows its numbers and says **not judged**, and why."""
    from rkdo.bench.report import write_report

    store_maker(tmp_path)
    _rewrite(tmp_path, "steps_per_epoch = 50", "steps_per_epoch = 3", seeds=(0, 1))
    text = write_report(tmp_path).read_text()
    verdicts = text[text.index("## Verdicts"):text.index("## digits")]
    assert "30.0% to 30.0% lower" in verdicts  # the numbers are still there
    for word in ("**reproduced**", "**supported", "does not carry over"):
        assert word not in verdicts.split("Claim 5")[0], word
    assert verdicts.count("**not judged**") >= 3
    assert ("Not judged: 2 seed(s) paired between rkdo and icon, a verdict needs at least 3; "
            "the longest run trains 15 steps (5 epochs of 3 batches), a verdict needs at "
            "least 100.") in verdicts
    # the profile's 2 timed steps give no time ratio either
    assert "time not judged (2 timed step(s), a ratio needs at least 5" in verdicts
