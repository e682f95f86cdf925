"""The ``rkdo`` command sets a passive OpenMP wait policy and a thread count before torch loads,
and leaves the user's own choice alone; ``rkdo --version`` and option typos need no torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rkdo.cli import _threads

ENV = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "RKDO_"))}
ENV["PYTHONPATH"] = str(Path(__file__).resolve().parents[2] / "src")


def _python(code: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**ENV, **extra}, timeout=300)


def test_unset_environment_gets_passive_waiting_and_free_cores(monkeypatch) -> None:
    monkeypatch.setattr(_threads, "busy_cores", lambda: 1)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    environ: dict[str, str] = {}
    assert _threads.configure([], environ) == "3"
    assert environ == {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "3"}


@pytest.mark.parametrize(("cores", "busy", "expected"),
                         [(2, 0, 2), (2, 1, 1), (2, 7, 1), (8, 3, 5), (1, 0, 1)])
def test_default_threads_one_per_free_core_at_least_one(cores: int, busy: int,
                                                        expected: int) -> None:
    assert _threads.default_threads(cores, busy) == expected


def test_the_users_choice_wins_in_order() -> None:
    user = {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "7"}
    environ = dict(user)
    assert _threads.configure(["demo"], environ) == "7" and environ == user
    environ = {"OMP_NUM_THREADS": "7", "RKDO_THREADS": "3"}
    assert _threads.configure([], environ) == "3"
    assert _threads.configure(["--threads", "2", "demo"], environ) == "2"
    assert _threads.configure(["--threads=5", "demo"], environ) == "5"
    # a command's own --threads (rkdo profile --threads N) is not the global flag
    environ = {"OMP_NUM_THREADS": "4"}
    assert _threads.configure(["profile", "--threads", "1"], environ) == "4"


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_bad_thread_counts_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="--threads"):
        _threads.configure(["--threads", value], {})
    result = subprocess.run([sys.executable, "-m", "rkdo", "--threads", value, "demo"],
                            capture_output=True, text=True, env=ENV, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--threads" in result.stderr.strip().splitlines()[-1]


def test_the_command_sets_threads_before_torch_loads() -> None:
    # importing the command (and the package face) loads no torch, so the policy can apply
    code = ("import sys, rkdo, rkdo.cli.main\n"
            "assert 'torch' not in sys.modules, 'torch loaded before the thread policy'\n"
            "from rkdo.cli import _threads\n"
            "_threads.configure(sys.argv[1:])\n"
            "import torch, os\n"
            "print(torch.get_num_threads(), os.environ['OMP_WAIT_POLICY'])\n")
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[1] == "PASSIVE"
    result = subprocess.run([sys.executable, "-c", code, "--threads", "1"], capture_output=True,
                            text=True, env=ENV, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "PASSIVE"]


def test_version_needs_no_torch_and_a_typo_builds_only_its_command() -> None:
    from rkdo import __version__

    code = ("import sys\nfrom rkdo.cli.main import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
            "print(*sorted(m for m in sys.modules if m.startswith('rkdo.')))\n")
    result = subprocess.run([sys.executable, "-c", code, "--version"], capture_output=True,
                            text=True, env=ENV, timeout=300)
    assert result.stdout.startswith(f"rkdo {__version__} (torch ")
    assert result.stdout.splitlines()[-2] == "NO-TORCH"
    # a typo in one command's options: the other commands are listed by name (their family
    # modules are imported, light), their options are not built (no rkdo.training etc.)
    result = subprocess.run([sys.executable, "-c", code, "report", "store", "--nosuch"],
                            capture_output=True, text=True, env=ENV, timeout=300)
    assert "unrecognized arguments: --nosuch" in result.stderr
    loaded = set(result.stdout.splitlines()[-1].split())
    assert "rkdo.cli.bench" in loaded
    assert not {m.split(".")[1] for m in loaded} & {"training", "estimators", "viz",
                                                     "evaluation"}, loaded


def test_bench_help_lists_every_shipped_grid(capsys: pytest.CaptureFixture[str]) -> None:
    from rkdo.bench.grid import shipped_grids
    from rkdo.cli.main import main

    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    listed = capsys.readouterr().out.split("shipped grids", 1)[1]
    names = shipped_grids()
    assert len(names) >= 5
    for name in names:
        assert f"\n  {name} " in listed, name
