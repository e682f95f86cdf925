"""The method table is declared once, without torch, and every entry can be built: its kernels
(or, for an outside method, its loss) have a builder in :mod:`rkdo.methods`."""

from __future__ import annotations

from rkdo import method_table, methods


def test_every_entry_has_its_builders() -> None:
    for method in method_table.METHODS.values():
        if method.outside:
            assert method.name in methods.OUTSIDE, method.name
            assert method.supervisory is None and method.learned is None, method.name
        else:
            assert method.supervisory in methods.SUPERVISORY, method.name
            assert method.learned in methods.LEARNED, method.name
    outside = {m.name for m in method_table.METHODS.values() if m.outside}
    assert set(methods.OUTSIDE) == outside


def test_the_methods_module_gives_the_tables_own_names() -> None:
    assert methods.METHODS is method_table.METHODS
    assert methods.Method is method_table.Method
    assert methods.describe() == method_table.describe()
    assert methods.names() == list(method_table.METHODS)
    assert methods.describe().splitlines()[1].split()[:2] == ["icon", "the"]
