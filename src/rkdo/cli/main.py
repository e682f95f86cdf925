"""The ``rkdo`` command: one parser assembled from the command families, nothing else.

    rkdo demo | train | eval       :mod:`rkdo.cli.train`
    rkdo bench | report | profile  :mod:`rkdo.cli.bench`
    rkdo viz ...                   :mod:`rkdo.cli.viz`
    rkdo embed | cluster           :mod:`rkdo.cli.estimators`

Each family module declares ``HELP`` (its commands' one-line help) and
``add_parser(subparsers, commands=None)``; the commands run through
:func:`rkdo.cli._common.run_command`. :func:`main` first sets the thread policy
(:mod:`rkdo.cli._threads`: it must precede torch), then builds the options of the command named
on the line only: every other command is listed by name and ``HELP`` line, so that ``rkdo
--help``, ``--version`` and an unknown command load no torch, and a typo in a command's options
is reported without building the other commands' parsers (some read torch-backed defaults).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from rkdo.cli import _threads
from rkdo.cli._common import run_command

__all__ = ["main", "build_parser", "COMMANDS"]

_DESCRIPTION = ("Recursive KL Divergence Optimization (RKDO) and I-Con: train, evaluate, "
                "benchmark and visualise neighbourhood-KL representation learning.")

#: Which family module declares each command (kept in the order ``rkdo --help`` lists them).
COMMANDS = {
    "demo": "train", "train": "train", "eval": "train",
    "bench": "bench", "report": "bench", "profile": "bench",
    "viz": "viz",
    "embed": "estimators", "cluster": "estimators",
}


def _version() -> str:
    """``rkdo 0.1.0 (torch 2.x, Python 3.y)``, read without importing torch."""
    from importlib import metadata

    from rkdo import __version__

    try:
        torch = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch = "not installed"
    python = ".".join(map(str, sys.version_info[:3]))
    return f"rkdo {__version__} (torch {torch}, Python {python})"


class _Version(argparse._VersionAction):
    """``--version``: its line is made (package metadata read) only when it is asked for."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        self.version = _version()
        super().__call__(parser, namespace, values, option_string)


def _rkdo_parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """The ``rkdo`` parser's global options and its (empty) command list."""
    parser = argparse.ArgumentParser(
        prog="rkdo", description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Start with `rkdo demo`. Every command has its own --help.",
    )
    parser.add_argument("--version", action=_Version)
    parser.add_argument(
        "--threads", type=int, metavar="N",
        help="compute threads (default: one per core that other processes leave free; "
             "OMP_NUM_THREADS or RKDO_THREADS in the environment are respected). Idle threads "
             "always wait passively unless OMP_WAIT_POLICY says otherwise")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    return parser, sub


def build_parser(families: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``rkdo`` argument parser: every command family, or only those named."""
    parser, sub = _rkdo_parser()
    for family in dict.fromkeys(COMMANDS.values()) if families is None else families:
        importlib.import_module(f"rkdo.cli.{family}").add_parser(sub)
    return parser


def _command_parser(command: str | None) -> argparse.ArgumentParser:
    """The ``rkdo`` parser with ``command``'s options (None: no command's) and every other
    command listed by its name and one-line help: the same listing, errors and help as
    :func:`build_parser`, without building (and importing) what the other commands need."""
    parser, sub = _rkdo_parser()
    for name, family in COMMANDS.items():
        module = importlib.import_module(f"rkdo.cli.{family}")
        if name == command:
            module.add_parser(sub, [name])
        else:
            sub.add_parser(name, help=module.HELP[name])
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The command named on the line: the first word after the global options; ``""`` for
    ``--version``; None for help or no word."""
    words = iter(argv)
    for token in words:
        if token == "--threads":
            next(words, None)
        elif not token.startswith("-"):
            return token
        elif token in ("-h", "--help"):
            return None
        elif token == "--version":
            return ""
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rkdo`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command(argv)
    try:
        if "torch" not in sys.modules:  # loaded already (a caller in Python): too late to set
            # the demo's table is the same on every machine: one thread unless the user says
            _threads.configure(argv, default=1 if command == "demo" else None)
    except ValueError as error:
        print(f"rkdo: error: {error}", file=sys.stderr)
        return 2
    args = _command_parser(command).parse_args(argv)
    name = " ".join(["rkdo", args.command, *filter(None, [getattr(args, "viz_command", None)])])
    return run_command(args, name)


if __name__ == "__main__":
    sys.exit(main())
