"""The ``rkdo`` command: one parser assembled from the command families, nothing else.

    rkdo demo | train | eval       :mod:`rkdo.cli.train`
    rkdo bench | report | profile  :mod:`rkdo.cli.bench`
    rkdo viz ...                   :mod:`rkdo.cli.viz`
    rkdo embed | cluster           :mod:`rkdo.cli.estimators`

Each family module exposes ``add_parser(subparsers)``; the commands run through
:func:`rkdo.cli._common.run_command`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rkdo.cli import bench, estimators, train, viz
from rkdo.cli._common import run_command

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The full ``rkdo`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="rkdo",
        description="Recursive KL Divergence Optimization (RKDO) and I-Con: train, evaluate, "
                    "benchmark and visualise neighbourhood-KL representation learning.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Start with `rkdo demo`. Every command has its own --help.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for family in (train, bench, viz, estimators):
        family.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rkdo`` console script."""
    args = build_parser().parse_args(argv)
    return run_command(args, f"rkdo {args.command}")


if __name__ == "__main__":
    sys.exit(main())
