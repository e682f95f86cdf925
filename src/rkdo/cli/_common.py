"""What every command family shares: running a parsed command, and small argparse helpers.

Exit codes of :func:`run_command`: 0 done, 2 bad input (``ValueError``, missing file) or a file
that cannot be written (``OSError``: read-only, disk full), 1 training stopped
(:class:`rkdo.training.TrainingError`), 130 interrupted (Ctrl-C, SIGINT), 143 terminated
(SIGTERM). Each becomes one clear line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
from typing import Any

__all__ = ["run_command", "flag", "print_json"]


def run_command(args: argparse.Namespace, name: str) -> int:
    """Run a parsed sub-command (``args.func(args)``); ``name`` prefixes its error lines."""
    # imported when a command runs, so that importing rkdo.cli does not load torch
    from rkdo.training import Interrupted, TrainingError

    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"{name}: error: {_os_error(error)}", file=sys.stderr)
        return 2
    except TrainingError as error:
        print(f"{name}: training stopped: {error}", file=sys.stderr)
        return 1
    except Interrupted as error:
        print(f"{name}: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"{name}: interrupted; `rkdo train --resume DIR` continues a run and rerunning "
              "`rkdo bench` continues a grid, from the last checkpoint", file=sys.stderr)
        return 130


def _os_error(error: OSError) -> str:
    """One line for a failed file operation: what, where, and what to do."""
    where = f" ({error.filename})" if error.filename else ""
    what = error.strerror or str(error)
    if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return (f"{what}{where}; files written before are intact. Free some space, then "
                "rerun the command (`rkdo train --resume DIR` continues a run from its last "
                "checkpoint)")
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{what}{where}; choose a writable location"
    return f"{what}{where}"


def flag(name: str) -> str:
    """The command-line flag of a field name: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


def print_json(payload: Any) -> None:
    """Print ``payload`` as indented, key-sorted JSON (the ``--json`` outputs)."""
    print(json.dumps(payload, indent=2, sort_keys=True))
