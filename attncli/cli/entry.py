"""The `attn` console script's first steps, before anything heavy is imported.

This module imports almost nothing, so that within a few milliseconds of start-up:
- Ctrl-C, SIGTERM and SIGHUP end attn quietly with 128 + the signal's number, after
  the clean-up of whatever was under way (signals.py), numpy's import included;
- `attn --version` answers without importing numpy or the rest of the package;
- a message or a table that the terminal's encoding cannot show comes out escaped
  (`\\u2192`) instead of crashing attn;
- what is still buffered for stdout is flushed while errors can still be reported:
  a closed pipe exits 141 quietly, a full disk or a closed stdout is one line and exit 1.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence

from ..version import __version__
from . import signals


def main() -> None:
    """The `attn` console script (and `python -m attncli`)."""
    signals.install()
    sys.exit(run_main(sys.argv[1:]))


def run_main(argv: Sequence[str]) -> int:
    """`attn ARGV` as a whole process runs it: encoding, signals, the final flush."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    # Every number that could overflow is checked and said in one line; a Python
    # warning on stderr would only repeat it, or worse, come without it.
    warnings.simplefilter("ignore")
    version = list(argv) == ["--version"]
    try:
        with signals.held():  # numpy turns an interrupted import into an ImportError
            from ..errors import AttnError, ExitStatus
            from . import output

            if not version:
                from .runner import run
        if version:
            try:
                output.write_version(__version__)
                status = int(ExitStatus.OK)
            except AttnError as exc:
                status = _report(exc.for_command_line(), exc.status)
        else:
            status = run(argv)
        status = _flush_stdout(status)
    except output.ClosedPipeError:
        status = ExitStatus.CLOSED_PIPE
    except KeyboardInterrupt:
        status = 130  # 128 + SIGINT
    except SystemExit as stop:  # SIGTERM or SIGHUP (signals.py)
        status = stop.code if isinstance(stop.code, int) else 1
    signals.ignore()  # the work is done: a late signal must not print a traceback
    return status


def _flush_stdout(status: int) -> int:
    """Flush stdout now, while an error can still be reported; afterwards the
    interpreter's own flush at exit finds nothing left to write."""
    from ..errors import AttnError
    from . import output

    if sys.stdout is None:
        return status
    try:
        with output.writing_stdout():
            sys.stdout.flush()
    except AttnError as exc:
        return _report(exc.for_command_line(), exc.status)
    return status


def _report(message: str, status: int) -> int:
    from ..errors import shown_text

    if sys.stderr is not None:
        try:
            sys.stderr.write(f"attn: error: {shown_text(message, backslash=False)}\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass  # stderr is gone too: the exit status says it all
    return status
