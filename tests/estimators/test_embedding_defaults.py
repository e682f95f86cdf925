"""NeighbourEmbedding's declared defaults are the ones its signature gives (one home: the
signature reads them from ``_embedding_defaults``, as ``rkdo embed`` does)."""

from __future__ import annotations

import inspect

from rkdo.estimators import NeighbourEmbedding, _embedding_defaults
from rkdo.estimators import embedding as embedding_module


def test_every_parameter_default_is_the_declared_one() -> None:
    assert NeighbourEmbedding().get_params() == dict(_embedding_defaults.DEFAULTS)
    signature = inspect.signature(NeighbourEmbedding.__init__).parameters
    assert {name: p.default for name, p in signature.items() if name != "self"} == dict(
        _embedding_defaults.DEFAULTS)


def test_the_choices_are_the_estimators() -> None:
    for name in ("OBJECTIVES", "SOLVERS", "INITS"):
        assert getattr(embedding_module, name) is getattr(_embedding_defaults, name)
    assert _embedding_defaults.DEFAULTS["objective"] in _embedding_defaults.OBJECTIVES
    assert _embedding_defaults.DEFAULTS["method"] in _embedding_defaults.SOLVERS
    assert _embedding_defaults.DEFAULTS["init"] in _embedding_defaults.INITS


def test_every_objective_and_dataset_has_a_display_name() -> None:
    """``rkdo embed --plot``'s title prints these: a new objective or dataset needs one."""
    from rkdo.vision.catalogue import DATASETS, DISPLAY_NAMES

    assert set(_embedding_defaults.OBJECTIVE_NAMES) == set(_embedding_defaults.OBJECTIVES)
    assert set(DISPLAY_NAMES) == set(DATASETS)
