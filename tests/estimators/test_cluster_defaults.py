"""KernelClustering's declared defaults are the ones its signature gives (one home: the
signature reads them from ``_cluster_defaults``, as ``rkdo cluster`` does)."""

from __future__ import annotations

import inspect

from rkdo.estimators import KernelClustering, _cluster_defaults
from rkdo.estimators import clustering as clustering_module


def test_every_parameter_default_is_the_declared_one() -> None:
    assert KernelClustering().get_params() == dict(_cluster_defaults.DEFAULTS)
    signature = inspect.signature(KernelClustering.__init__).parameters
    assert {name: p.default for name, p in signature.items() if name != "self"} == dict(
        _cluster_defaults.DEFAULTS)


def test_the_choices_are_the_estimators() -> None:
    for name in ("AFFINITIES", "INITS"):
        assert getattr(clustering_module, name) is getattr(_cluster_defaults, name)
    assert _cluster_defaults.DEFAULTS["affinity"] in _cluster_defaults.AFFINITIES
    assert _cluster_defaults.DEFAULTS["init"] in _cluster_defaults.INITS
