"""The layer rule, checked: core < vision, estimators < evaluation < training < bench, viz < cli.

``import-linter`` reads the ``layers`` contract in ``pyproject.toml`` (grimp sees function-level
imports too). A copy of the package with one deliberate upward import shows that the contract can
fail, and an AST scan keeps lazy imports of rkdo's own modules inside ``rkdo.cli``.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "rkdo"
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is a test extra")


def _lint(source_root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(source_root)}
    return subprocess.run(
        [str(LINT), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=source_root, env=env, capture_output=True, text=True, timeout=120,
    )


def test_layers_contract_is_kept() -> None:
    done = _lint(ROOT / "src")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    shutil.copytree(PACKAGE, tmp_path / "rkdo", ignore=shutil.ignore_patterns("__pycache__"))
    core = tmp_path / "rkdo" / "functional.py"
    core.write_text(core.read_text() + "\n\ndef _upward():\n    from rkdo.training import train\n"
                    "    return train\n")
    done = _lint(tmp_path)
    assert done.returncode != 0
    assert "BROKEN" in done.stdout
    assert "rkdo.functional -> rkdo.training" in done.stdout


def _lazy_rkdo_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for function in ast.walk(tree):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(function):
            names = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            found += [f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {name}"
                      for name in names if name == "rkdo" or name.startswith("rkdo.")]
    return found


def test_only_the_cli_imports_rkdo_modules_lazily() -> None:
    lazy = [hit for path in sorted(PACKAGE.rglob("*.py")) if "cli" not in path.parts
            for hit in _lazy_rkdo_imports(path)]
    assert not lazy, "function-level imports of rkdo modules outside rkdo.cli:\n" + "\n".join(lazy)
