"""One `attn` command line, run: read by the fast parser and handed to the pipeline
(app.py), or else to Typer (help, completion, mistakes); and whatever goes wrong
turned into one line on stderr and an exit status. This is the one place that does.

It imports neither numpy nor the pipeline up front: help and usage errors never use
them, and numpy alone costs as much as the rest of `attn --help`. An ordinary command
line imports the pipeline (numpy with it) before anything else happens.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Sequence

from ..errors import AttnError, ExitStatus, shown_text
from ..version import __version__
from . import output, signals
from .options import COMPLETION_VARIABLE, Parsed, parse


def run(argv: Sequence[str] | None = None) -> int:
    """Run attn on `argv` (sys.argv[1:] by default); the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = _debugging(argv)
    parsed = None if COMPLETION_VARIABLE in os.environ else parse(argv)
    if parsed is None:  # help, completion, a mistake: Typer's words

        def run_typer() -> int:
            with signals.held():  # Typer brings compiled extensions (pydantic) with it
                from .typer_app import run_typer

            return run_typer(argv, _dispatch)

        return guarded(run_typer, debug)
    with signals.held():  # numpy turns an interrupted import into an ImportError
        from .app import dispatch

    return guarded(lambda: dispatch(parsed), debug)


def _dispatch(parsed: Parsed) -> int | None:
    """app.dispatch, for a command line that only Typer could read."""
    with signals.held():
        from .app import dispatch

    return dispatch(parsed)


def _debugging(argv: Sequence[str]) -> bool:
    """--debug on the command line, or ATTN_DEBUG=1 (true, yes, on) in the environment."""
    options = argv[: list(argv).index("--")] if "--" in argv else argv
    on = os.environ.get("ATTN_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")
    return on or "--debug" in options


def guarded(action: Callable[[], int | None], debug: bool = False) -> int:
    """Run `action`; turn whatever goes wrong into one line on stderr and an exit code
    (with the traceback too when `debug`)."""
    try:
        return action() or 0
    except AttnError as exc:
        _traceback_if(debug)
        return _fail(exc.for_command_line(), exc.status)
    except output.ClosedPipeError:
        return ExitStatus.CLOSED_PIPE
    except KeyboardInterrupt:
        return ExitStatus.INTERRUPTED
    except MemoryError:
        _traceback_if(debug)
        return _fail(
            "out of memory; ask for less: --query TOKEN for one row, or attn context "
            "instead of the full scores or weights, or a shorter input",
            ExitStatus.BAD_DATA,
        )
    except Exception as exc:
        _traceback_if(debug)  # a bug in attn, not bad input: say so, briefly
        return _fail(
            f"internal error ({type(exc).__name__}: {exc}); this is a bug in attn "
            f"{__version__}: please report it with the output of the same command run "
            "with --debug",
            ExitStatus.INTERNAL,
        )


def _traceback_if(debug: bool) -> None:
    if debug:
        import traceback  # only for a bug report: it costs start-up time

        traceback.print_exc()


def _fail(message: str, status: int) -> int:
    # File names and tokens in a message come from the user: nothing in them may move
    # the cursor, set the title or break the one line (tokens are quoted with repr,
    # whose backslashes stay single).
    line = shown_text(message, backslash=False)
    if sys.stderr is not None:  # with stderr closed, the exit status says it all
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(f"attn: error: {line}\n")
            sys.stderr.flush()
    return status
