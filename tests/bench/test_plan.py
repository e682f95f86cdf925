"""Tests for rkdo.bench.plan: a grid expands into the paper's jobs with the right configs."""

from __future__ import annotations

import pytest

from rkdo import bench


def test_shipped_grids_parse_into_the_paper_design() -> None:
    assert bench.shipped_grids() == ["digits-smoke", "fashion-cpu", "fashion-long",
                                     "fashion-noise", "fashion-recipe", "paper"]
    paper = bench.load_grid("paper")
    assert paper.seeds == [42, 123, 456, 789, 101] and paper.durations == [1, 2, 5, 10]
    jobs = bench.plan(paper, validate=False)
    kinds = [job.kind for job in jobs]
    # 3 datasets x 5 seeds x (2 floors + 2 methods) + one profile per dataset
    assert kinds.count("train") == 30 and kinds.count("floor") == kinds.count("pixels") == 15
    assert kinds.count("profile") == 3
    by_key = {job.key: job for job in jobs}
    rkdo = by_key["cifar10/rkdo/seed42"].config
    assert (rkdo["depth"], rkdo["alpha"], rkdo["temperature"], rkdo["beta"]) == (3, 0.5, 0.5, 0.1)
    assert rkdo["encoder"] == "resnet18" and rkdo["batch_size"] == 64
    assert rkdo["steps_per_epoch"] == 10 and rkdo["epochs"] == 10
    assert rkdo["eval_epochs"] == [1, 2, 5] and rkdo["eval_protocol"] in ("paper", "both")
    icon = by_key["stl10/icon/seed101"].config
    assert (icon["method"], icon["temperature"], icon["debias"], icon["batch_size"]) == (
        "icon", 0.5, 0.2, 32)
    profile = by_key["cifar10/profile"].config
    assert [label for label, _ in profile["variants"]] == ["rkdo depth 1", "rkdo depth 3",
                                                          "icon"]
    # each variant is its method exactly as the grid runs it (no options leak between methods)
    variants = dict(profile["variants"])
    assert variants["rkdo depth 3"]["debias"] is None and variants["icon"]["debias"] == 0.2
    assert variants["rkdo depth 1"]["depth"] == 1 and variants["rkdo depth 3"]["depth"] == 3
    fashion = bench.load_grid("fashion-cpu")
    assert fashion.datasets[0].dataset == "fashion-mnist"
    assert {m.name for m in fashion.methods} >= {"rkdo", "icon"}



def test_only_execution_settings_may_be_overridden() -> None:
    with pytest.raises(ValueError, match="may be overridden"):
        bench.plan(bench.load_grid("digits-smoke"), {"lr": 0.1}, validate=False)


def test_the_long_fashion_grid_plans_five_seeds_of_four_methods() -> None:
    grid = bench.load_grid("fashion-long")
    assert grid.seeds == [0, 1, 2, 3, 4] and max(grid.durations) == 20
    jobs = bench.plan(grid, validate=False)
    trained = [job for job in jobs if job.kind == "train"]
    assert len(trained) == 4 * 5
    by_key = {job.key: job.config for job in trained}
    temporal = by_key["fashion-mnist/rkdo-temporal-annealed/seed3"]
    assert (temporal["recursion"], temporal["alpha_schedule"]) == ("temporal", "cosine")
    assert {c["temperature"] for c in by_key.values()} == {0.2}


def test_the_recipe_grid_plans_the_recipe_at_width_16_with_both_floors() -> None:
    grid = bench.load_grid("fashion-recipe")
    assert grid.seeds == [0, 1, 2, 3, 4] and grid.durations == [1, 2, 4]
    jobs = bench.plan(grid, validate=False)
    kinds = [job.kind for job in jobs]
    assert kinds.count("train") == 20 and kinds.count("floor") == kinds.count("pixels") == 5
    configs = [job.config for job in jobs if job.kind == "train"]
    assert {(c["width"], c["temperature"], c["crop_scale"], c["lr_schedule"]) for c in configs} \
        == {(16, 0.2, 0.4, "none")}
    assert {c["eval_epochs"] == [1, 2] and c["epochs"] == 4 for c in configs} == {True}


def test_a_jobs_config_is_parsed_once_when_the_job_is_made(monkeypatch) -> None:
    import dataclasses

    from rkdo.training import TrainConfig

    jobs = bench.plan(bench.load_grid("digits-smoke"), validate=False)

    def refuse(*_args, **_kwargs):
        raise AssertionError("a job's config was parsed again")

    monkeypatch.setattr(TrainConfig, "from_dict", classmethod(refuse))
    for job in jobs:
        settings = job.train_config  # no parsing here, nor anywhere a job is run
        if job.kind != "profile":
            assert dataclasses.asdict(settings) == job.config
        else:
            assert settings.resolved_image_size() == 8  # digits
