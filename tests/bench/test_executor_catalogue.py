"""The executors' names are declared once, torch-free, and the registry has a class for each."""

from __future__ import annotations

from rkdo.bench.executors import catalogue, registry


def test_the_registry_has_a_class_for_each_declared_name_in_order() -> None:
    assert list(registry.EXECUTORS) == list(catalogue.SUMMARIES)
    assert all(summary.strip() for summary in catalogue.SUMMARIES.values())
