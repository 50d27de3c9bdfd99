"""The one error type: bad input or parameters. Its message is what the user reads.

Also `shown_text`, how any text from the user (tokens, file names, quoted input) is
shown wherever text meets a terminal or a line-based format: every layer may use it.
"""

from __future__ import annotations

import enum
import math
import re


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


# The settings a message may name. A message writes one with setting("d_out", 2): the
# library says "d_out=2" (its parameter), the command line "--d-out 2" (its flag).
SETTINGS = (
    "mode",
    "query",
    "d_out",
    "seed",
    "init",
    "qkv_bias",
    "heads",
    "wrapper",
    "dropout",
    "dropout_seed",
    "batch",
    "dtype",
    "weights",
    "input_format",
    "kv_groups",
    "latent_dim",
    "window",
    "scale",
    "mask",
    "qkv",
    "kv",
    "causal_align",
    "rope",
    "rope_theta",
    "rope_layout",
    "rope_partial",
    "position_offset",
    "head_dim",  # attn rope: the rotation alone
    "positions",
    "softcap",
    "alibi",
    "sink_logits",
    "qk_norm",
    "gate",
    # a model's KV cache (kv_memory.py): heads, batch and dtype above too
    "emb_dim",
    "layers",
    "context_length",
    "swa_ratio",
    "prefill",
    "chunk",
    "stage",  # attn check: the stage of a bare matrix of the reader's numbers
)
_SETTING = r"\{(~?)(" + "|".join(SETTINGS) + r")(?:=([^{}]*))?\}"
# Flags with a short spelling, for messages that list several choices tersely.
_SHORT_FLAGS = {"mode": "-m", "query": "-q"}
# A library user gives the weights as `projections=`, the command line as --weights FILE.
_PARAMETER = {"weights": "projections"}


def setting(name: str, value: object = None, short: bool = False) -> str:
    """A setting (and its value) as a message names it: `d_out=2` from the library,
    `--d-out 2` from the command line (AttnError spells it for each); `short`: the
    flag's short spelling where it has one (`-q 2`)."""
    assert name in SETTINGS, name
    mark = "~" if short else ""
    return f"{{{mark}{name}}}" if value is None else f"{{{mark}{name}={value}}}"


class AttnError(Exception):
    """Bad input or bad parameters, said so a user can fix it.

    The message names what is wrong, where (file, row, column, token or setting) and
    how to fix it. `status` tells the CLI which exit code to use. A setting is written
    with `setting()` in the message: `message` names it as the library's parameter
    (d_out=2), `for_command_line` as the flag (--d-out 2).

    >>> d_out = setting("d_out")
    >>> error = AttnError.usage(f"{setting('d_out', 0)} is too small: pick a larger {d_out}")
    >>> error.message
    'd_out=0 is too small: pick a larger d_out'
    >>> error.for_command_line()
    '--d-out 0 is too small: pick a larger --d-out'
    """

    def __init__(self, message: str, status: ExitStatus = ExitStatus.BAD_DATA) -> None:
        self.template = message
        self.message = re.sub(_SETTING, _as_parameter, message)  # re caches the pattern
        super().__init__(self.message)
        self.status = status

    @classmethod
    def usage(cls, message: str) -> AttnError:
        """An error in how attn was called (exit code 2), not in the data."""
        return cls(message, ExitStatus.BAD_USAGE)

    def for_command_line(self) -> str:
        """The message with each setting named by its flag."""
        return re.sub(_SETTING, _as_flag, self.template)


def _as_parameter(match: re.Match[str]) -> str:
    name = _PARAMETER.get(match.group(2), match.group(2))
    return name if match.group(3) is None else f"{name}={match.group(3)}"


def _as_flag(match: re.Match[str]) -> str:
    name = match.group(2)
    flag = _SHORT_FLAGS.get(name) if match.group(1) else None
    flag = flag or "--" + name.replace("_", "-")
    return flag if match.group(3) is None else f"{flag} {match.group(3)}"


def number_text(number: int) -> str:
    """An integer for a message: a huge one by its size, not its thousands of digits."""
    if abs(number) < 10**30:
        return str(number)
    return f"{'-' if number < 0 else ''}≈10^{math.log10(abs(number)):.0f}"


def size_text(n_bytes: float) -> str:
    """Bytes as people read them: 5.2 TiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n_bytes < 1024 or unit == "PiB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.1f} PiB"


# Characters shown escaped besides the C0 and C1 controls, DEL and lone surrogates: those
# that reorder or break a terminal line (Trojan Source, CVE-2021-42574), and the two
# noncharacters XML forbids (an SVG or HTML picture must stay well-formed).
_REORDERING = frozenset(
    (
        0x061C,  # ARABIC LETTER MARK
        0x200E,  # LEFT-TO-RIGHT MARK
        0x200F,  # RIGHT-TO-LEFT MARK
        0x2028,  # LINE SEPARATOR
        0x2029,  # PARAGRAPH SEPARATOR
        *range(0x202A, 0x202F),  # LRE, RLE, PDF, LRO, RLO
        *range(0x2066, 0x206A),  # LRI, RLI, FSI, PDI
        0xFFFE,
        0xFFFF,
    )
)
_NAMED = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def shown_text(text: str, backslash: bool = True) -> str:
    r"""`text` as it may be shown on a terminal or in a line-based format: control
    characters, lone surrogates and line-reordering characters become visible escapes,
    in the spelling of Python's repr and git's quoted paths (\n, \t, \x1b, \u202e,
    \ud800), and a backslash is doubled, so what is shown reads back unambiguously.
    Everything else (letters of any script, emoji, spaces) stays as it is.
    `backslash=False` leaves backslashes single: for a message whose tokens are quoted
    with repr already, where only safety for the terminal is wanted.

    >>> shown_text("journey")
    'journey'
    >>> print(shown_text("a\x1b[2Jb\nc\\d \u202e\ud800"))
    a\x1b[2Jb\nc\\d \u202e\ud800
    >>> print(shown_text("'a\\x1b' in b\x1b.csv", backslash=False))
    'a\x1b' in b\x1b.csv
    """
    if text.isprintable() and ("\\" not in text or not backslash):
        return text  # all that may need escaping is unprintable
    return "".join(char if char == "\\" and not backslash else _shown_char(char) for char in text)


def _shown_char(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return f"\\x{code:02x}"
    if 0xD800 <= code <= 0xDFFF or code in _REORDERING:
        return f"\\u{code:04x}"
    return char
