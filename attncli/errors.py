"""The one error type: bad input or parameters. Its message is what the user reads."""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    """Process exit codes, one meaning each (see the README's "Exit codes")."""

    OK = 0
    BAD_DATA = 1  # input or output file unreadable, malformed, wrong shape, non-finite
    BAD_USAGE = 2  # unknown flag, bad flag value, a flag with no effect in the chosen mode
    INTERNAL = 70  # a bug in attn (EX_SOFTWARE in sysexits.h)
    HANGUP = 129  # the terminal went away (128 + SIGHUP)
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
    CLOSED_PIPE = 141  # stdout closed by the reader, as `| head` does (128 + SIGPIPE)
    TERMINATED = 143  # asked to stop, as `kill` does (128 + SIGTERM)


class AttnError(Exception):
    """Bad input or bad parameters, said so a user can fix it.

    The message names what is wrong, where (file, row, column, token or flag) and
    how to fix it. `status` tells the CLI which exit code to use.
    """

    def __init__(self, message: str, status: ExitStatus = ExitStatus.BAD_DATA) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    @classmethod
    def usage(cls, message: str) -> AttnError:
        """An error in how attn was called (exit code 2), not in the data."""
        return cls(message, ExitStatus.BAD_USAGE)


def size_text(n_bytes: float) -> str:
    """Bytes as people read them: 5.2 TiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n_bytes < 1024 or unit == "PiB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.1f} PiB"
