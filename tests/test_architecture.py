"""The layer rule, checked: core < vision, estimators < evaluation < training < bench, viz < cli.

``import-linter`` reads the ``layers`` contract in ``pyproject.toml`` (grimp sees function-level
imports too). A copy of the package with one deliberate upward import shows that the contract can
fail, and an AST scan keeps lazy imports of rkdo's own modules inside ``rkdo.cli``. Modules
import names from where they are defined, no import circle exists, and no module is over 400
lines nor any function over 60 (argparse declarations in ``rkdo.cli`` excepted); each checker is
shown to catch a planted case.
"""

from __future__ import annotations

import ast
import os
import re
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


HEAVY = ("torch", "sklearn", "numpy")  # numpy alone costs --help ~0.05-0.1 s


def _heavy_modules_loaded(*argv: str, source: Path = ROOT / "src") -> list[str]:
    """Which of :data:`HEAVY` ``rkdo ARGV`` (run in a fresh interpreter) has imported."""
    code = ("import sys\nfrom rkdo.cli.main import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            f"print(*[m for m in {HEAVY!r} if m in sys.modules], sep=',')\n")
    env = {**os.environ, "PYTHONPATH": str(source)}
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.stdout, done.stderr
    return [name for name in done.stdout.splitlines()[-1].split(",") if name]


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["nosuch"]])
def test_the_command_list_loads_no_torch_sklearn_or_numpy(argv: list[str]) -> None:
    """``rkdo --help`` lists every command from its family's one-line ``HELP``, without
    building (and importing what builds) the commands' options."""
    assert _heavy_modules_loaded(*argv) == []


def _every_command() -> list[list[str]]:
    from rkdo.cli.main import COMMANDS  # the command list itself loads no torch (test above)

    return [[name] for name in COMMANDS] + [["viz", name] for name in
                                            ("kaleidoscope", "curves", "embedding")]


@pytest.mark.parametrize("command", _every_command(), ids=" ".join)
def test_every_commands_help_loads_no_torch_sklearn_or_numpy(command: list[str]) -> None:
    """``rkdo COMMAND --help`` builds that command's options from torch- and numpy-free declarations
    (defaults, choices, help texts): every command, so a new one is checked too."""
    assert _heavy_modules_loaded(*command, "--help") == []


def test_the_heavy_module_check_sees_an_import(tmp_path: Path) -> None:
    """A copy of the package whose command list imports torch is caught."""
    shutil.copytree(PACKAGE, tmp_path / "rkdo", ignore=shutil.ignore_patterns("__pycache__"))
    main = tmp_path / "rkdo" / "cli" / "main.py"
    main.write_text(main.read_text().replace("import argparse\n", "import argparse\nimport torch\n"
                                             "import sklearn\n", 1))
    assert _heavy_modules_loaded("--help", source=tmp_path) == ["torch", "sklearn", "numpy"]


def test_the_heavy_module_check_sees_an_import_in_a_declaration(tmp_path: Path) -> None:
    """A copy whose estimator defaults import torch and sklearn: ``rkdo embed --help`` is caught."""
    shutil.copytree(PACKAGE, tmp_path / "rkdo", ignore=shutil.ignore_patterns("__pycache__"))
    declared = tmp_path / "rkdo" / "estimators" / "_embedding_defaults.py"
    declared.write_text(declared.read_text() + "\nimport sklearn  # noqa\nimport torch  # noqa\n")
    assert _heavy_modules_loaded("embed", "--help", source=tmp_path) == ["torch", "sklearn",
                                                                         "numpy"]


def test_the_heavy_module_check_sees_numpy_alone(tmp_path: Path) -> None:
    """A copy whose fields module imports numpy at the top again: ``rkdo train --help`` (which
    reads its MIN_POINTS) is caught."""
    shutil.copytree(PACKAGE, tmp_path / "rkdo", ignore=shutil.ignore_patterns("__pycache__"))
    fields = tmp_path / "rkdo" / "fields.py"
    fields.write_text(fields.read_text() + "\nimport numpy  # noqa\n")
    assert _heavy_modules_loaded("train", "--help", source=tmp_path) == ["numpy"]


def _cycles(graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(
                        child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_circle_among_rkdo_modules() -> None:
    """No two rkdo modules import each other, directly or through others: module level,
    inside functions or under TYPE_CHECKING (grimp sees all three)."""
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("rkdo", include_external_packages=False)
    assert graph.find_shortest_chain("rkdo.training.loop", "rkdo.training.config")
    assert _cycles(graph) == []


def test_the_circle_finder_finds_a_circle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    grimp = pytest.importorskip("grimp")
    package = tmp_path / "circ"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from circ import b\n")
    (package / "b.py").write_text("def f():\n    from circ import a\n    return a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("circ", include_external_packages=False, cache_dir=None)
    assert _cycles(graph) == [["circ.a", "circ.b"]]


def _defined(path: Path) -> set[str]:
    """Names a module defines at its top level (functions, classes, assignments)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def _borrowed_imports(root: Path, package: str) -> list[str]:
    """``from pkg.mod import name`` where ``mod`` (a module, not a package's face) only
    re-exports ``name``: the import should name the module that defines it."""

    def module(name: str) -> Path | None:
        path = root / Path(*name.split("."))
        return path.with_suffix(".py") if path.with_suffix(".py").exists() else None

    found = []
    for path in sorted((root / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                    and node.module.split(".")[0] == package):
                continue
            source = module(node.module)
            if source is None:
                continue  # a package: its __init__ is the face that gathers names
            found += [f"{path.relative_to(root)}:{node.lineno} {alias.name} via {node.module}"
                      for alias in node.names if alias.name not in _defined(source)]
    return found


def test_modules_import_names_from_where_they_are_defined() -> None:
    assert _borrowed_imports(ROOT / "src", "rkdo") == []


def test_a_borrowed_import_is_found(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from pkg.b import g\n")
    (package / "a.py").write_text("def f():\n    return 1\n")
    (package / "b.py").write_text("from pkg.a import f\n\ndef g():\n    return f()\n")
    (package / "c.py").write_text("from pkg.b import f, g\nfrom pkg import g as h\n")
    assert _borrowed_imports(tmp_path, "pkg") == ["pkg/c.py:1 f via pkg.b"]


MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
# argparse declarations in rkdo/cli (add_parser, _add_train, _add_executor_arguments, ...) list
# options one per line; their length is the CLI's, not logic's
_ARGPARSE_DECLARATION = re.compile(r"_?add_\w*")


def _oversized(root: Path, package: str, skip: tuple[str, ...] = ()) -> list[str]:
    """Modules over ``MAX_MODULE_LINES`` lines and functions over ``MAX_FUNCTION_LINES``
    (``end_lineno - lineno + 1``: signature, docstring and body), argparse declarations in the
    package's ``cli`` excepted."""
    found = []
    for path in sorted((root / package).rglob("*.py")):
        name = path.relative_to(root).as_posix()
        if name in skip:
            continue
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            found.append(f"{name}: {len(text.splitlines())} lines")
        in_cli = "cli" in path.relative_to(root / package).parts[:-1]
        for node in ast.walk(ast.parse(text, filename=str(path))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES and not (
                    in_cli and _ARGPARSE_DECLARATION.fullmatch(node.name)):
                found.append(f"{name}:{node.lineno} {node.name}: {length} lines")
    return found


def test_no_module_over_400_lines_and_no_function_over_60() -> None:
    too_long = _oversized(ROOT / "src", "rkdo")
    assert not too_long, "split these along a seam (one idea per module):\n" + "\n".join(too_long)


def _function(name: str, lines: int) -> str:
    """A function of exactly ``lines`` lines."""
    return f"def {name}():\n" + "    x = 0\n" * (lines - 2) + "    return x\n"


def test_the_size_checker_finds_long_functions_and_modules(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "cli").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text(_function("fits", 60) + _function("too_long", 61))
    (package / "b.py").write_text("x = 0\n" * 401)
    (package / "c.py").write_text(_function("add_parser", 61))  # outside cli: logic
    (package / "cli" / "__init__.py").write_text("")
    (package / "cli" / "d.py").write_text(
        _function("add_parser", 80) + _function("_add_train", 80) + _function("_run", 61))
    assert _oversized(tmp_path, "pkg") == [
        "pkg/a.py:61 too_long: 61 lines", "pkg/b.py: 401 lines", "pkg/c.py:1 add_parser: 61 lines",
        "pkg/cli/d.py:161 _run: 61 lines",
    ]
    assert _oversized(tmp_path, "pkg", skip=("pkg/a.py", "pkg/b.py")) == [
        "pkg/c.py:1 add_parser: 61 lines", "pkg/cli/d.py:161 _run: 61 lines",
    ]
