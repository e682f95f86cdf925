"""The ``rkdo`` command: one parser assembled from the command families, nothing else.

    rkdo demo | train | eval       :mod:`rkdo.cli.train`
    rkdo bench | report | profile  :mod:`rkdo.cli.bench`
    rkdo viz ...                   :mod:`rkdo.cli.viz`
    rkdo embed | cluster           :mod:`rkdo.cli.estimators`

Each family module exposes ``add_parser(subparsers)``; the commands run through
:func:`rkdo.cli._common.run_command`. :func:`main` first sets the thread policy
(:mod:`rkdo.cli._threads`: it must precede torch), then imports only the family of the command
named on the line, so that a typo in a command's options is reported without loading the
other families (``rkdo --help`` and an unknown command load them all, to list every command).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from importlib import metadata

from rkdo.cli import _threads
from rkdo.cli._common import run_command

__all__ = ["main", "build_parser", "COMMANDS"]

#: Which family module declares each command (kept in the order ``rkdo --help`` lists them).
COMMANDS = {
    "demo": "train", "train": "train", "eval": "train",
    "bench": "bench", "report": "bench", "profile": "bench",
    "viz": "viz",
    "embed": "estimators", "cluster": "estimators",
}


def _version() -> str:
    """``rkdo 0.1.0 (torch 2.x, Python 3.y)``, read without importing torch."""
    from rkdo import __version__

    try:
        torch = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch = "not installed"
    python = ".".join(map(str, sys.version_info[:3]))
    return f"rkdo {__version__} (torch {torch}, Python {python})"


def build_parser(families: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``rkdo`` argument parser: every command family, or only those named."""
    parser = argparse.ArgumentParser(
        prog="rkdo",
        description="Recursive KL Divergence Optimization (RKDO) and I-Con: train, evaluate, "
                    "benchmark and visualise neighbourhood-KL representation learning.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Start with `rkdo demo`. Every command has its own --help.",
    )
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument(
        "--threads", type=int, metavar="N",
        help="compute threads (default: one per core that other processes leave free; "
             "OMP_NUM_THREADS or RKDO_THREADS in the environment are respected). Idle threads "
             "always wait passively unless OMP_WAIT_POLICY says otherwise")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for family in dict.fromkeys(COMMANDS.values()) if families is None else families:
        importlib.import_module(f"rkdo.cli.{family}").add_parser(sub)
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


def _families(command: str | None) -> list[str] | None:
    """The families a command needs: its own, none for ``--version``, all (``None``) for help
    or an unknown command (to list every command)."""
    if command == "":
        return []
    return [COMMANDS[command]] if command in COMMANDS else None


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
    args = build_parser(_families(command)).parse_args(argv)
    name = " ".join(["rkdo", args.command, *filter(None, [getattr(args, "viz_command", None)])])
    return run_command(args, name)


if __name__ == "__main__":
    sys.exit(main())
