"""Stopping a run cleanly on SIGINT (Ctrl-C) and SIGTERM (what schedulers send before a kill).

While the training steps run, the first signal only raises a flag: the loop finishes the current
step, writes a checkpoint and raises :class:`Interrupted`. Outside the steps (loading data, the
final evaluation), or on a second signal, the run stops at once: every file is written
atomically, so the last checkpoint stays good. Handlers are installed only in the main thread
(Python delivers signals there), and the previous handlers are restored on exit.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType, TracebackType

__all__ = ["Interrupted", "StopNow", "StopSignals", "signal_name"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal; the message says what was kept, ``exit_code`` is 128 + signal."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum, self.exit_code = signum, 128 + signum


class StopNow(BaseException):
    """Raised by the handler to stop at once; turned into :class:`Interrupted` by the loop."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class StopSignals:
    """Context manager: catch SIGINT/SIGTERM; ``deferring`` says whether a step is under way.

    ``signum`` is the signal received (``None`` if none). With ``deferring`` the first signal
    sets it and returns; otherwise (and on a second signal) the handler raises ``StopNow``.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.deferring = False
        self.previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for number in SIGNALS:
                self.previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)  # type: ignore[arg-type]
        self.previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.signum is None
        self.signum = signum
        if self.deferring and first:
            print(f"\n{signal.Signals(signum).name}: stopping after this step with a checkpoint "
                  "(send it again to stop at once)", file=sys.stderr, flush=True)
            return
        raise StopNow(signum)


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name
