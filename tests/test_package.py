"""The package's face: ``import rkdo`` loads the torch-only core, and its names resolve."""

from __future__ import annotations

import os
import subprocess
import sys


def test_import_rkdo_is_light_and_names_the_core() -> None:
    code = (
        "import sys, rkdo\n"
        "from rkdo import IConLoss, RKDOLoss, methods\n"
        "assert rkdo.methods is methods and rkdo.kernels.Cosine and rkdo.teacher.alpha_schedule\n"
        "assert rkdo.schedules.temperature_schedule is rkdo.functional.temperature_schedule\n"
        "heavy = [m for m in ('matplotlib', 'sklearn', 'scipy', 'rkdo.vision',\n"
        "         'rkdo.evaluation', 'rkdo.training', 'rkdo.bench', 'rkdo.viz', 'rkdo.cli')\n"
        "         if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_import_rkdo_lets_idle_threads_sleep_unless_told_otherwise() -> None:
    code = "import os, rkdo; print(os.environ['OMP_WAIT_POLICY'])"
    for given, expected in ((None, "PASSIVE"), ("ACTIVE", "ACTIVE")):
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        if given is not None:
            env["OMP_WAIT_POLICY"] = given
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == expected
