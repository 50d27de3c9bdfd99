"""How attn stops when asked to: Ctrl-C (SIGINT), SIGTERM and SIGHUP.

`install()` makes each of them unwind attn like an exception (KeyboardInterrupt for
Ctrl-C, SystemExit(128 + signal) for the others), through every `finally` and clean-up
(a temporary output file is removed), to the exit status 128 + the signal's number; a
second signal during that clean-up is ignored. `held()` defers them for a moment where
an interruption would do harm: while a compiled extension initialises (numpy turns an
interrupted import into a long ImportError) or while a temporary file is created.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _stop(signum: int, frame: FrameType | None) -> None:
    ignore()  # the clean-up this starts must not be interrupted in turn
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


def install() -> None:
    """Stop on Ctrl-C, SIGTERM and SIGHUP by unwinding (for the command line only: a
    library does not take over its host's signals)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _stop)
    if hasattr(signal, "SIGXFSZ"):
        # Past `ulimit -f` a write fails (EFBIG), which attn reports after removing its
        # temporary file, rather than the process being killed on the spot.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def ignore() -> None:
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Defer Ctrl-C, SIGTERM and SIGHUP until the block ends (then they act at once)."""
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    except (AttributeError, ValueError, OSError):  # no such call, or not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
