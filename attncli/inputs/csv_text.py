"""CSV and TSV input: the exact parser, and a fast path for long inputs.

The exact parser (csv, then float() cell by cell) says precisely where a problem is.
For long inputs the fast path reads everything with np.loadtxt in one C pass, the token
column as a string field beside the numbers. The two read the same text alike only
where it is plain, so the fast path first checks, at C speed, that it is: no control
characters (loadtxt takes \x1c-\x1f for spaces and a NUL ends its strings; float()
and csv do neither), a CR only before a LF, and quotes only around whole fields on one
line. Anything else, and anything loadtxt refuses or reads as not finite, goes to the
exact parser: the fast path is faster, never different (tests/test_trust_inputs.py
feeds both the same texts).
"""

from __future__ import annotations

import csv
import io
import math
import re
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..embeddings import Embeddings
from ..errors import AttnError, setting
from .text import TOKEN_HEADERS, InputFormat, is_numeric_text, looks_like_json

# Inputs shorter than this go straight to the exact parser (tests lower it to 0).
FAST_MIN_CHARS = 1 << 20
# Tokens as loadtxt reads them are fixed-width strings, at least this wide (or four
# times the longest in the first lines); a token that fills the width might have been
# cut, so such an input is left to the exact parser.
_FAST_TOKEN_CHARS = 32
_SAMPLE_LINES = 50  # lines read by csv to decide on the header and token column
_CHUNK_BYTES = 1 << 24  # a long file is checked this much at a time
# C0 control characters but tab, LF and CR (and DEL): the fast path leaves them to csv
_CONTROLS = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_ORDINARY = bytes(b for b in range(256) if b not in _CONTROLS and b not in b'"\r')


def _from_csv(text: str, source: str, delimiter: str, fmt: InputFormat) -> Embeddings:
    if looks_like_json(text):
        raise AttnError(
            f"{source}: looks like JSON but is being read as {fmt.value.upper()}; "
            f"pass {setting('input_format', 'json')} (or give the file a .json name)"
        )
    # csv refuses fields over 128 KiB by default; a long quoted token is still a token
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[tuple[int, list[str]]] = []  # (line number, cells)
    try:
        for cells in reader:
            if any(cell.strip() for cell in cells):  # blank lines separate nothing
                rows.append((reader.line_num, cells))
    except csv.Error as exc:
        raise AttnError(
            f"{source}: line {reader.line_num}: malformed {fmt.value.upper()} ({exc})"
        ) from None
    if not rows:
        raise AttnError(
            f"{source}: no data, only empty cells; give one row per token: the token, "
            "then its numbers"
        )
    first = rows[0][1]
    header = first if _is_header(first, len(rows) > 1) else None
    data = rows[1:] if header is not None else rows
    if not data:
        raise AttnError(
            f"{source}: only a header row ({delimiter.join(first)!s}); "
            "add one row per token: the token, then its numbers"
        )
    has_tokens = (header is not None and header[0].strip().casefold() in TOKEN_HEADERS) or any(
        not is_numeric_text(cells[0]) for _, cells in data
    )
    width = len(header) if header is not None else len(data[0][1])
    if has_tokens and width < 2:
        raise AttnError(
            f"{source}: line {data[0][0]} has a token but no numbers; "
            "each row needs the token, then its embedding values"
        )
    first_value = 1 if has_tokens else 0
    tokens: list[str] = []
    matrix = np.empty((len(data), width - first_value), dtype=np.float64)
    for i, (line, cells) in enumerate(data):
        if len(cells) != width:
            like = "the header" if header is not None else f"line {data[0][0]}"
            hint = _delimiter_hint(cells, delimiter)
            raise AttnError(
                f"{source}: line {line} has {_cells(len(cells))}, but {like} has {width}; "
                f"every row needs the same columns{hint}"
            )
        token = cells[0] if has_tokens else f"x{i + 1}"
        tokens.append(token)
        for j in range(first_value, width):
            cell = cells[j]
            column = f"column {j + 1}" + (f" ({header[j]!r})" if header is not None else "")
            if not cell.strip():
                raise AttnError(
                    f"{source}: line {line}, {column}, token {token!r}: "
                    "empty cell; fill in a number"
                )
            try:
                value = float(cell)
            except ValueError:
                raise AttnError(
                    f"{source}: line {line}, {column}, token {token!r}: {cell.strip()!r} "
                    "is not a number"
                ) from None
            if not math.isfinite(value):
                raise AttnError(
                    f"{source}: line {line}, {column}, token {token!r}: {cell.strip()!r} "
                    "is not a finite number; every embedding value must be finite"
                )
            matrix[i, j - first_value] = value
    return Embeddings(tuple(tokens), matrix, source)


def _cells(count: int) -> str:
    return "1 cell" if count == 1 else f"{count} cells"


def _delimiter_hint(cells: list[str], delimiter: str) -> str:
    other = "\t" if delimiter == "," else ","
    if any(other in cell for cell in cells):
        name = "tabs" if other == "\t" else "commas"
        return f" (this line seems to use {name}: use one delimiter throughout)"
    return ""


def _is_header(first: list[str], more_rows: bool) -> bool:
    """Whether the first row names the columns: its first cell is a token column's name
    (token, word, ...; or empty, as pandas writes, over more rows), or no other cell is
    a number, or it is the one text cell over numbers of a one-column file."""
    name = first[0].strip()
    if name.casefold() in TOKEN_HEADERS and (name or more_rows):
        return True
    if len(first) > 1:
        return not any(is_numeric_text(cell) for cell in first[1:])
    return more_rows and not is_numeric_text(first[0])


# ---------------------------------------------------------------- the fast path


def from_csv(
    text: str, source: str, delimiter: str, fmt: InputFormat, raw: bytes | None = None
) -> Embeddings:
    """Token embeddings from CSV or TSV text (`raw`: its bytes, if it came as bytes);
    long inputs take the fast path if they can."""
    if len(text) >= FAST_MIN_CHARS and not looks_like_json(text):
        fast = _fast_text(text, source, delimiter, raw)
        if fast is not None:
            return fast
    return _from_csv(text, source, delimiter, fmt)


def _fast_text(text: str, source: str, delimiter: str, raw: bytes | None) -> Embeddings | None:
    if raw is None:
        try:
            raw = text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: csv's to read
            return None
    if not _plain(raw, _quoted_line(delimiter)):
        return None
    if "\r" in text:
        text = text.replace("\r\n", "\n")  # _plain saw a CR only before a LF
    lines = text.split("\n")

    def from_lines(dtype: np.dtype[Any], skip: int) -> NDArray[Any]:
        return np.loadtxt(
            lines[skip:], delimiter=delimiter, dtype=dtype, ndmin=1, comments=None, quotechar='"'
        )

    return _fast(lines[:_SAMPLE_LINES], source, delimiter, from_lines)


def from_csv_path(path: str, head: str, delimiter: str) -> Embeddings | None:
    """The fast path straight from a file (np.loadtxt reads it in C), given its first
    lines `head`; None to leave it to the exact parser."""

    def from_file(dtype: np.dtype[Any], skip: int) -> NDArray[Any]:
        # np.loadtxt reads the file in text mode: universal newlines turn CR LF into LF
        return np.loadtxt(
            path,
            delimiter=delimiter,
            dtype=dtype,
            ndmin=1,
            comments=None,
            quotechar='"',
            skiprows=skip,
            encoding="utf-8-sig",
        )

    if looks_like_json(head):
        return None

    def checked() -> bool:
        try:
            return _plain_file(path, _quoted_line(delimiter))
        except OSError:
            return False  # the exact reader says what is wrong

    return _fast(head.split("\n")[:_SAMPLE_LINES], path, delimiter, from_file, checked)


def _quoted_line(delimiter: str) -> re.Pattern[bytes]:
    """A line whose quotes csv and np.loadtxt read alike: each field either unquoted
    (no quote in it) or quoted whole, on this one line."""
    d = re.escape(delimiter.encode())
    field = rb'(?:"(?:[^"\r\n]|"")*"|[^"\r\n' + d + rb"]*)"
    return re.compile(field + rb"(?:" + d + field + rb")*\r?")


def _plain(data: bytes, quoted_line: re.Pattern[bytes]) -> bool:
    """Whether `data`, whole lines, is text csv and np.loadtxt read alike (see the
    module's docstring)."""
    special = data.translate(None, _ORDINARY)  # the controls, quotes and CRs, in C
    if not special:
        return True
    if special.translate(None, b'"\r'):
        return False  # a control character
    if b"\r" in special and data.count(b"\r") != data.count(b"\r\n"):
        return False  # a CR alone: a line end to csv, not to loadtxt
    quote = data.find(b'"')
    while quote >= 0:
        begin = data.rfind(b"\n", 0, quote) + 1
        end = data.find(b"\n", quote)
        end = len(data) if end < 0 else end
        if quoted_line.fullmatch(data, begin, end) is None:
            return False
        quote = data.find(b'"', end)
    return True


def _plain_file(path: str, quoted_line: re.Pattern[bytes]) -> bool:
    """`_plain` for a file, read a chunk at a time; a chunk with nothing special in it
    (the usual case) is not copied."""
    with open(path, "rb") as handle:
        tail = b""  # the unfinished last line of what was read
        while chunk := handle.read(_CHUNK_BYTES):
            cut = chunk.rfind(b"\n") + 1
            if cut == 0:  # still inside one line
                tail += chunk
                continue
            special = chunk.translate(None, _ORDINARY) or tail.translate(None, _ORDINARY)
            if special and not _plain(tail + chunk[:cut], quoted_line):
                return False
            tail = chunk[cut:]
        return _plain(tail, quoted_line)


def _fast(
    sample_lines: list[str],
    source: str,
    delimiter: str,
    load_table: Callable[[np.dtype[Any], int], NDArray[Any]],
    checked: Callable[[], bool] = lambda: True,
) -> Embeddings | None:
    """Decide on the header and token column from the first lines, as the exact parser
    would, then (if `checked` agrees) read everything with one np.loadtxt call; None
    whenever in doubt."""
    if not sample_lines or not sample_lines[0].strip():
        return None
    rows = _sample_rows(sample_lines[:-1] or sample_lines, delimiter)
    # blank rows: both parsers skip them (and loadtxt refuses those of blank cells)
    sample = [cells for cells in rows or [] if any(cell.strip() for cell in cells)]
    if len(sample) < 2:
        return None
    first = sample[0]
    if len(first) == 1:
        return None
    is_header = _is_header(first, True)
    header = first if is_header else None
    data = sample[1:] if is_header else sample
    has_tokens = (header is not None and header[0].strip().casefold() in TOKEN_HEADERS) or any(
        not is_numeric_text(cells[0]) for cells in data
    )
    n_numbers = len(first) - has_tokens
    fields: list[tuple[str, str]] = [(f"d{k}", "f8") for k in range(n_numbers)]
    longest = max((len(cells[0]) for cells in data), default=1)
    token_chars = max(_FAST_TOKEN_CHARS, 4 * longest)
    dtype = np.dtype([("token", f"U{token_chars}"), *fields] if has_tokens else fields)
    if not checked():
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. "input contained no data": step aside
            table = load_table(dtype, 1 if is_header else 0)
    except (ValueError, IndexError, Warning):
        return None
    n_rows = table.shape[0]
    if n_rows == 0:
        return None
    # The numbers sit side by side in each record, after the token: one strided view,
    # one copy.
    offset = dtype.fields["d0"][1]  # type: ignore[index]
    block = np.ndarray(
        (n_rows, n_numbers), np.float64, table, offset, (table.strides[0], 8)
    )  # (n, record) -> (n, d)
    matrix = np.ascontiguousarray(block)
    if not np.isfinite(matrix).all():
        return None
    if has_tokens:
        names = table["token"]
        if int(np.char.str_len(names).max(initial=0)) >= token_chars:
            return None  # perhaps cut: let the exact parser read it
        tokens = tuple(names.tolist())
    else:
        tokens = tuple(f"x{i + 1}" for i in range(n_rows))
    return Embeddings(tokens, matrix, source)


def _sample_rows(lines: Iterable[str], delimiter: str) -> list[list[str]] | None:
    try:
        return list(csv.reader(lines, delimiter=delimiter))
    except csv.Error:
        return None
