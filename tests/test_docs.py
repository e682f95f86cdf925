"""What the documentation promises is what the code does.

- README's Quickstart commands are the ones ``.ci/run`` runs, and they need no activated shell.
- README's demo table is exactly what ``rkdo demo`` prints on the code as shipped (the demo is
  rerun here: about a minute on two idle cores).
- The API reference site builds from the docstrings with warnings as errors.
- ``CITATION.cff`` names the RKDO paper and I-Con.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_MKDOCS_2_WARNING": "1"}


def _quickstart() -> list[str]:
    """The shell commands of README's Quickstart block, one per line."""
    section = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "README's Quickstart has no ```bash block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def _steps(line: str) -> list[str]:
    return [step.strip() for step in line.split("&&")]


def test_ci_runs_the_quickstart_commands_without_activation() -> None:
    first, second = _quickstart()
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.lstrip().startswith("#")]
    setup = [s for s in _steps(first) if "rkdo demo" not in s]  # the demo: test below
    for step in [*setup, *_steps(second)]:
        assert step in ci, f".ci/run lacks README's step {step!r}"
        # a new terminal: every step names the venv's programs, nothing relies on `activate`
        program = shlex.split(step)[0]
        assert program == "python3" or program.startswith(".venv/bin/"), step
    assert not any("activate" in line for line in ci)
    # the first command installs only what the demo needs (no test extras)
    assert "pip install -e ." in first and "[test]" not in first
    assert "[test]" in second and "pytest" in second


def _tables(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.startswith("|")]


def test_readme_demo_table_is_what_rkdo_demo_prints(tmp_path: Path) -> None:
    # the demo's own default thread count (one), as for a user who sets none
    env = {k: v for k, v in ENV.items() if k not in ("OMP_NUM_THREADS", "RKDO_THREADS")}
    result = subprocess.run(
        [sys.executable, "-m", "rkdo", "demo", "--out", str(tmp_path / "demo"), "--no-progress"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    printed = _tables(result.stdout)
    assert printed and printed[0].startswith("| metric | untrained | I-Con | RKDO |")
    section = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    assert _tables(section) == printed, (
        "README's demo table differs from what `rkdo demo` prints now:\n" + "\n".join(printed))
    assert (tmp_path / "demo" / "demo.png").is_file()


def test_api_reference_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    page = (tmp_path / "core" / "index.html").read_text()
    for name in ("rkdo.losses.RKDOLoss", "rkdo.losses.IConLoss", "rkdo.methods.get"):
        assert f'id="{name}"' in page, name


def test_citation_names_both_papers() -> None:
    text = (ROOT / "CITATION.cff").read_text()
    assert "arXiv:2504.21707" in text and "Recursive KL Divergence Optimization" in text
    assert "I-Con: A Unifying Framework for Representation Learning" in text
    assert "Alshammari" in text and "ICLR 2025" in text
