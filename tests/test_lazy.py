"""Package faces that load their names on first use (rkdo._lazy): every public name resolves to
the object of the module that defines it, nothing loads before it is read, and a submodule that
shares a face name (rkdo.bench.plan) does not replace it."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
FACES = ("rkdo.training", "rkdo.evaluation", "rkdo.estimators", "rkdo.bench",
         "rkdo.bench.executors")


def _run(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[-1]


@pytest.mark.parametrize("face", FACES)
def test_every_public_name_is_its_defining_modules(face: str) -> None:
    package = importlib.import_module(face)
    homes = package.__dict__["_homes"]
    for name in package.__all__:
        value = getattr(package, name)
        if name in homes:
            assert value is getattr(importlib.import_module(homes[name]), name), name
    assert set(homes) <= set(package.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nosuch'"):
        package.nosuch  # noqa: B018


def test_a_face_loads_a_module_when_its_name_is_read() -> None:
    code = ("import sys\nimport rkdo.training as t\n"
            "before = 'rkdo.training.trainer' in sys.modules\nt.train\n"
            "print(before, 'rkdo.training.trainer' in sys.modules, sep=',')\n")
    assert _run(code) == "False,True"


def test_a_submodule_of_a_face_name_does_not_replace_it() -> None:
    """``rkdo.bench.store`` imports the module ``rkdo.bench.plan``; ``bench.plan`` stays the
    function, read before or after."""
    code = ("from rkdo import bench\nimport rkdo.bench.store\n"
            "from rkdo.bench.plan import plan\n"
            "print(bench.plan is plan, callable(bench.plan), sep=',')\n")
    assert _run(code) == "True,True"


def test_other_submodules_load_as_attributes() -> None:
    code = ("import rkdo.evaluation as e\nimport sys\n"
            "print(e.stats is sys.modules['rkdo.evaluation.stats'])\n")
    assert _run(code) == "True"
