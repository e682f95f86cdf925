"""What every command family shares: running a parsed command, and small argparse helpers.

Exit codes of :func:`run_command`: 0 done, 2 bad input (``ValueError``, missing file),
1 training stopped (:class:`rkdo.training.TrainingError`), 130 interrupted (Ctrl-C). Bad input
and stopped runs become one clear line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["run_command", "flag", "print_json"]


def run_command(args: argparse.Namespace, name: str) -> int:
    """Run a parsed sub-command (``args.func(args)``); ``name`` prefixes its error lines."""
    # imported when a command runs, so that importing rkdo.cli does not load torch
    from rkdo.training import TrainingError

    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        return 2
    except TrainingError as error:
        print(f"{name}: training stopped: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{name}: interrupted; `rkdo train --resume DIR` continues a run and rerunning "
              "`rkdo bench` continues a grid, from the last checkpoint", file=sys.stderr)
        return 130


def flag(name: str) -> str:
    """The command-line flag of a field name: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


def print_json(payload: Any) -> None:
    """Print ``payload`` as indented, key-sorted JSON (the ``--json`` outputs)."""
    print(json.dumps(payload, indent=2, sort_keys=True))
