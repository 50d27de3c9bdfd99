"""Token embeddings in: text, bytes or a path -> Embeddings(tokens, matrix).

Accepted forms (README "Input formats"):
- JSON `{"tokens": [...], "embeddings": [[...], ...]}` (tokens optional),
- JSON `{"token": [numbers], ...}` (order kept),
- JSON `[[numbers], ...]` (tokens named x1..xn, the book's x^(i)),
- attn's own JSON output of `context`, `queries`, `keys` or `values`,
- CSV or TSV: an optional header; the first column is the token when it is not
  numeric (or the header calls it "token"); the other columns are numbers.

Every problem is an AttnError that names the file, the row and column or token,
and the fix.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import enum
import io
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .errors import AttnError

# The book's running example, section 3.3: "Your journey starts with one step".
BOOK_TOKENS = ("Your", "journey", "starts", "with", "one", "step")
BOOK_EMBEDDINGS = (
    (0.43, 0.15, 0.89),
    (0.55, 0.87, 0.66),
    (0.57, 0.85, 0.64),
    (0.22, 0.58, 0.33),
    (0.77, 0.25, 0.10),
    (0.05, 0.80, 0.55),
)
BOOK_SOURCE = "the built-in example"

# attn output whose `values` are one vector per token, so it can feed another layer.
VECTOR_COMMANDS = ("context", "queries", "keys", "values")
# Header names that mark the first CSV column as the token even when tokens look numeric;
# "" is the unnamed index column pandas writes.
TOKEN_HEADERS = frozenset({"", "token", "tokens", "word", "words", "text"})

_FORMS = (
    'expected {"tokens": [...], "embeddings": [[...], ...]}, '
    '{"token": [numbers], ...} or [[numbers], ...]'
)


class InputFormat(str, enum.Enum):
    """How INPUT is parsed; detected from the extension, else from the content."""

    JSON = "json"
    CSV = "csv"
    TSV = "tsv"


_EXTENSIONS = {".json": InputFormat.JSON, ".csv": InputFormat.CSV, ".tsv": InputFormat.TSV}


@dataclass(frozen=True)
class Embeddings:
    """One vector per token: `matrix[i]` is the embedding x^(i+1) of `tokens[i]`."""

    tokens: tuple[str, ...]
    matrix: NDArray[np.float64]  # (T, d_in)
    source: str = "<input>"  # how messages name where the data came from

    @property
    def d_in(self) -> int:
        return int(self.matrix.shape[1])

    def resolve_query(self, query: str) -> int:
        """The row a `--query` names: exact token, then a unique case-insensitive
        match, then a 0-based index."""
        exact = [i for i, token in enumerate(self.tokens) if token == query]
        if len(exact) == 1:
            return exact[0]
        if len(exact) > 1:
            raise _ambiguous(query, exact, self.tokens)
        folded = [i for i, token in enumerate(self.tokens) if token.casefold() == query.casefold()]
        if len(folded) == 1:
            return folded[0]
        if len(folded) > 1:
            raise _ambiguous(query, folded, self.tokens)
        if re.fullmatch(r"[+-]?\d+", query.strip()):
            index = int(query)
            if 0 <= index < len(self.tokens):
                return index
            raise AttnError.usage(
                f"--query {query} is out of range: {self.source} has {len(self.tokens)} "
                f"tokens, so an index runs from 0 to {len(self.tokens) - 1}"
            )
        close = difflib.get_close_matches(query, self.tokens, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise AttnError.usage(
            f"--query {query!r} is not a token of {self.source}; {hint}"
            f"tokens: {_listing(range(len(self.tokens)), self.tokens)} "
            "(a token's text or its 0-based index)"
        )


def book_example() -> Embeddings:
    """The book's six tokens with their 3-d embeddings (section 3.3)."""
    return Embeddings(BOOK_TOKENS, np.array(BOOK_EMBEDDINGS, dtype=np.float64), BOOK_SOURCE)


def load(path: str | os.PathLike[str], input_format: InputFormat | None = None) -> Embeddings:
    """Read token embeddings from a file (format from `input_format`, the extension,
    or the content)."""
    name = os.fspath(path)
    data = read_file(name, "a .json, .csv or .tsv file of embeddings")
    fmt = input_format or _EXTENSIONS.get(os.path.splitext(name)[1].lower())
    return loads(data, source=name, input_format=fmt)


def read_file(name: str, wanted: str) -> bytes:
    """A file's bytes, or an AttnError that says why not (`wanted` names what to give)."""
    if os.path.isdir(name):
        raise AttnError(f"{name} is a directory; give {wanted}")
    try:
        with open(name, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise AttnError(f"{name}: no such file; check the path") from None
    except PermissionError:
        raise AttnError(f"{name}: permission denied; make the file readable") from None
    except OSError as exc:
        raise AttnError(f"{name}: cannot read it ({exc.strerror or exc})") from None


def loads(
    data: str | bytes, source: str = "<input>", input_format: InputFormat | None = None
) -> Embeddings:
    """Parse token embeddings from JSON/CSV/TSV text or UTF-8 bytes."""
    text = data if isinstance(data, str) else decode_text(data, source)
    text = text.removeprefix("\ufeff")
    if not text.strip():
        what = "is empty" if not text else "holds only whitespace"
        raise AttnError(
            f"{source} {what}; expected token embeddings as JSON or CSV "
            "(see sample_inputs/your_journey.json)"
        )
    fmt = input_format or _sniff(text)
    if fmt is InputFormat.JSON:
        return _from_json(text, source)
    delimiter = "\t" if fmt is InputFormat.TSV else ","
    return _from_csv(text, source, delimiter, fmt)


def decode_text(data: bytes, source: str) -> str:
    """UTF-8 text (a byte-order mark is dropped), or an AttnError that says what it is."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise AttnError(
            f"{source} is UTF-16 text; attn reads UTF-8: convert it with "
            f"`iconv -f UTF-16 -t UTF-8 {source}`"
        )
    head = data[:4096]
    if b"\x00" in head:
        # ASCII text in UTF-16 has a NUL beside nearly every character, all on the same
        # side (odd bytes for little-endian, even for big-endian); other NULs mean binary
        if len(head) >= 8 and max(head[1::2].count(0), head[0::2].count(0)) >= 0.4 * (
            len(head) // 2
        ):
            raise AttnError(
                f"{source} looks like UTF-16 text without a byte-order mark; attn reads "
                f"UTF-8: convert it with `iconv -f UTF-16LE -t UTF-8 {source}`"
            )
        raise AttnError(
            f"{source} is binary data, not text (it holds NUL bytes); give token "
            "embeddings as UTF-8 JSON or CSV"
        )
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise AttnError(
            f"{source}: line {line}, byte {exc.start}: not UTF-8 text (byte "
            f"0x{data[exc.start]:02x}; Latin-1 or Windows-1252?); save it as UTF-8, e.g. "
            f"`iconv -f LATIN1 -t UTF-8 {source}`"
        ) from None


# JSON opens with an object, or with a list of something JSON (so a CSV token such as
# "[bold]" in the first cell is not mistaken for JSON).
_JSON_START = re.compile(r'\s*(\{|\[\s*([\[{"\-\d.\]tfnNI]|$))')


def _looks_like_json(text: str) -> bool:
    return _JSON_START.match(text) is not None


def _sniff(text: str) -> InputFormat:
    if _looks_like_json(text):
        return InputFormat.JSON
    stripped = text.lstrip()
    first_line = stripped.split("\n", 1)[0]
    return InputFormat.TSV if "\t" in first_line else InputFormat.CSV


# ---------------------------------------------------------------- JSON


class _NonFiniteLiteralError(ValueError):
    pass


def _reject_constant(literal: str) -> Any:
    # Python's json accepts NaN and Infinity; strict JSON (and attn) does not.
    raise _NonFiniteLiteralError(literal)


def parse_json(text: str, source: str, forms: str) -> Any:
    """Strict JSON (no NaN or Infinity), or an AttnError with the line and column;
    `forms` says what was expected."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except _NonFiniteLiteralError as exc:
        where = _locate(text, str(exc))
        raise AttnError(
            f"{source}: {where}{exc} is not a number JSON allows; every value must be a "
            "finite number"
        ) from None
    except json.JSONDecodeError as exc:
        hint = ""
        if not _looks_like_json(text):
            hint = "; if it is CSV or TSV, pass --input-format csv or tsv"
        elif exc.pos >= len(text.rstrip()):
            hint = "; the text ends before the JSON does (cut short?)"
        raise AttnError(
            f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}{hint}"
        ) from None
    except RecursionError:
        raise AttnError(f"{source}: JSON nested too deeply; {forms}") from None


def _from_json(text: str, source: str) -> Embeddings:
    obj = parse_json(text, source, _FORMS)
    if isinstance(obj, dict):
        if "command" in obj and "values" in obj:
            return _from_attn_output(obj, source)
        if "embeddings" in obj:
            return _from_tokens_and_embeddings(obj, source)
        if "tokens" in obj:
            raise AttnError(f'{source}: has "tokens" but no "embeddings"; {_FORMS}')
        if not obj:
            raise AttnError(f"{source}: the JSON object is empty; {_FORMS}")
        tokens = tuple(obj)
        for token, vector in obj.items():
            if not isinstance(vector, list):
                raise AttnError(
                    f"{source}: token {token!r} maps to {describe(vector)}, "
                    f"not a list of numbers; {_FORMS}"
                )
        return Embeddings(tokens, _matrix(list(obj.values()), tokens, source), source)
    if isinstance(obj, list):
        if obj and all(_is_number(v) for v in obj):
            raise AttnError(
                f"{source}: a flat list of numbers is one vector, not a list of tokens; "
                "wrap each token's vector in a list: [[0.43, 0.15], [0.55, 0.87]]"
            )
        tokens = tuple(f"x{i + 1}" for i in range(len(obj)))
        return Embeddings(tokens, _matrix(obj, tokens, source), source)
    raise AttnError(f"{source}: the JSON is {describe(obj)}; {_FORMS}")


def _from_tokens_and_embeddings(obj: dict[str, Any], source: str) -> Embeddings:
    rows = obj["embeddings"]
    if not isinstance(rows, list):
        raise AttnError(f'{source}: "embeddings" is {describe(rows)}; {_FORMS}')
    if "tokens" not in obj:
        tokens = tuple(f"x{i + 1}" for i in range(len(rows)))
    else:
        tokens = _tokens(obj["tokens"], source)
        if len(tokens) != len(rows):
            raise AttnError(
                f'{source}: {len(tokens)} "tokens" but {len(rows)} "embeddings" rows; '
                "give one vector per token"
            )
    return Embeddings(tokens, _matrix(rows, tokens, source), source)


def _from_attn_output(obj: dict[str, Any], source: str) -> Embeddings:
    command = obj.get("command")
    if command not in VECTOR_COMMANDS:
        raise AttnError(
            f"{source}: this is the output of `attn {command}`, not embeddings; pipe the "
            "output of `attn context -f json` (one vector per token) into the next layer"
        )
    if obj.get("query") is not None:
        raise AttnError(
            f"{source}: this `attn {command}` output holds one --query row only; "
            "run it without --query to pass every token on"
        )
    tokens = _tokens(obj.get("tokens"), source)
    rows = obj["values"]
    if not isinstance(rows, list) or len(rows) != len(tokens):
        raise AttnError(f'{source}: "values" must hold one vector per token ({len(tokens)})')
    return Embeddings(tokens, _matrix(rows, tokens, source), source)


def _tokens(value: Any, source: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise AttnError(f'{source}: "tokens" is {describe(value)}; give a list of strings')
    for i, token in enumerate(value):
        if not isinstance(token, str):
            raise AttnError(
                f"{source}: token {i} is {describe(token)}, not a string; "
                f"quote it: {json.dumps(str(token))}"
            )
    return tuple(value)


def _matrix(rows: list[Any], tokens: Sequence[str], source: str) -> NDArray[np.float64]:
    """Check a JSON list of vectors (numbers only, one length, finite) and convert it."""
    if not rows:
        raise AttnError(f"{source}: no tokens; give at least one token's vector")
    width = None
    for i, row in enumerate(rows):
        where = f"row {i + 1} (token {tokens[i]!r})"
        if not isinstance(row, list):
            raise AttnError(f"{source}: {where} is {describe(row)}, not a list of numbers")
        if width is None:
            width = len(row)
            if width == 0:
                raise AttnError(
                    f"{source}: {where} is an empty vector; give each token d_in ≥ 1 numbers"
                )
        elif len(row) != width:
            raise AttnError(
                f"{source}: {where} has {len(row)} numbers, but row 1 has {width}; "
                "every vector needs the same length"
            )
        for j, value in enumerate(row):
            if not _is_number(value):
                hint = ""
                if isinstance(value, list):
                    hint = " (a 3-d array?); give one flat vector of numbers per token"
                elif isinstance(value, str) and _is_numeric_cell(value):
                    hint = f"; write it without quotes: {value.strip()}"
                raise AttnError(
                    f"{source}: {where}, column {j + 1}: {describe(value)} is not a number{hint}"
                )
    matrix = np.array(rows, dtype=np.float64)
    _check_finite(matrix, tokens, source)
    return matrix


def _is_number(value: Any) -> bool:
    return type(value) is float or type(value) is int  # bool is an int subclass: not a number


def describe(value: Any) -> str:
    """A JSON value as a message names it: 'a string ("abc")', 'null', 'a list of 3 items'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({json.dumps(value)})"
    if isinstance(value, str):
        shown = value if len(value) <= 20 else value[:17] + "..."
        return f"a string ({json.dumps(shown)})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    return "an object"


def _locate(text: str, literal: str) -> str:
    match = re.search(r"-?\b" + re.escape(literal.lstrip("-")) + r"\b", text)
    if match is None:
        return ""
    line = text.count("\n", 0, match.start()) + 1
    column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
    return f"line {line}, column {column}: "


# ---------------------------------------------------------------- CSV / TSV


def _is_numeric_cell(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _from_csv(text: str, source: str, delimiter: str, fmt: InputFormat) -> Embeddings:
    if _looks_like_json(text):
        raise AttnError(
            f"{source}: looks like JSON but is being read as {fmt.value.upper()}; "
            "pass --input-format json (or give the file a .json name)"
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
    is_header = (len(rows) > 1 and first[0].strip() == "") or (
        len(first) > 1 and not any(_is_numeric_cell(cell) for cell in first[1:])
    )
    if len(first) == 1 and not _is_numeric_cell(first[0]) and len(rows) > 1:
        is_header = True  # a one-column file: a name over plain numbers
    header = first if is_header else None
    data = rows[1:] if is_header else rows
    if not data:
        raise AttnError(
            f"{source}: only a header row ({delimiter.join(first)!s}); "
            "add one row per token: the token, then its numbers"
        )
    has_tokens = (header is not None and header[0].strip().casefold() in TOKEN_HEADERS) or any(
        not _is_numeric_cell(cells[0]) for _, cells in data
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


# ---------------------------------------------------------------- shared checks


def _check_finite(matrix: NDArray[np.float64], tokens: Sequence[str], source: str) -> None:
    bad = np.argwhere(~np.isfinite(matrix))
    if bad.size:
        i, j = (int(k) for k in bad[0])
        raise AttnError(
            f"{source}: row {i + 1} (token {tokens[i]!r}), column {j + 1}: a number too "
            "large for float64 (beyond ±1.8e308); rescale the embeddings"
        )


def _listing(indices: Sequence[int] | range, tokens: Sequence[str], limit: int = 12) -> str:
    shown = [f"{i} {tokens[i]!r}" for i in list(indices)[:limit]]
    more = len(indices) - limit
    return ", ".join(shown) + (f", ... ({more} more)" if more > 0 else "")


def _ambiguous(query: str, matches: list[int], tokens: Sequence[str]) -> AttnError:
    choices = " or ".join(f"-q {i}" for i in matches[:6])
    return AttnError.usage(
        f"--query {query!r} is ambiguous: it matches {len(matches)} tokens "
        f"({_listing(matches, tokens)}); pick one by index: {choices}"
    )
