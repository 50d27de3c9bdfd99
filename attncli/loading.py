"""Token embeddings in: text, bytes or a path -> Embeddings(tokens, matrix).

Accepted forms (README "Input formats"):
- JSON `{"tokens": [...], "embeddings": [[...], ...]}` (tokens optional),
- JSON `{"token": [numbers], ...}` (order kept),
- JSON `[[numbers], ...]` (tokens named x1..xn, the book's x^(i)),
- attn's own JSON output of `context`, `queries`, `keys` or `values`,
- CSV or TSV: an optional header; the first column is the token when it is not
  numeric (or the header calls it "token"); the other columns are numbers,
- NumPy: a .npy matrix, or a .npz archive of "embeddings" (and "tokens").

Every input is read once, from its first bytes on: binary data is refused before more
is read, a pipe works like a file, and nothing is memory-mapped (numpy_input.py).
Every problem is an AttnError that names the file, the row and column or token,
and the fix.
"""

from __future__ import annotations

import contextlib
import enum
import io
import json
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import reading
from .errors import AttnError
from .reading import HEAD_BYTES, NUMPY_MAGICS, check_room, decode_text, read_rest, refuse_binary

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


class InputFormat(str, enum.Enum):
    """How INPUT is parsed; detected from the extension, else from the content."""

    JSON = "json"
    CSV = "csv"
    TSV = "tsv"
    NPY = "npy"  # a NumPy array, T x d_in
    NPZ = "npz"  # a NumPy archive: "embeddings", and "tokens" if named


_FAST_MIN_BYTES = 1 << 20  # files this long try the fast CSV path first
_EXTENSIONS = {
    ".json": InputFormat.JSON,
    ".csv": InputFormat.CSV,
    ".tsv": InputFormat.TSV,
    ".npy": InputFormat.NPY,
    ".npz": InputFormat.NPZ,
}


@dataclass(frozen=True)
class Embeddings:
    """One vector per token: `matrix[i]` is the embedding x^(i+1) of `tokens[i]`."""

    tokens: tuple[str, ...]
    matrix: NDArray[np.floating[Any]]  # (T, d_in): float64 from text, as stored from .npy
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
            digits = len(query.strip().lstrip("+-").lstrip("0"))
            # int() refuses more than 4300 digits; 20 are beyond any input already
            index = int(query) if digits <= 20 else len(self.tokens)
            if 0 <= index < len(self.tokens):
                return index
            shown = query if digits <= 20 else f"{query.strip()[:12]}… ({digits} digits)"
            raise AttnError.usage(
                f"--query {shown} is out of range: {self.source} has {len(self.tokens)} "
                f"tokens, so an index runs from 0 to {len(self.tokens) - 1}"
            )
        import difflib  # only for a query that is not a token

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
    or the content). The file is read once (a pipe or `<(...)` works like a file) and
    never memory-mapped."""
    name = os.fspath(path)
    fmt = input_format or _EXTENSIONS.get(os.path.splitext(name)[1].lower())
    numpy_named = fmt in (InputFormat.NPY, InputFormat.NPZ)
    wanted = "a .npy or .npz file" if numpy_named else "a .json, .csv or .tsv file of embeddings"
    with open_input(name, wanted) as opened:
        if numpy_named or opened.head.startswith(NUMPY_MAGICS):
            from .numpy_input import embeddings_from_file

            return embeddings_from_file(opened, fmt)
        refuse_binary(opened.head, name)
        fast = _fast_csv_file(opened, fmt)
        if fast is not None:
            return fast
        data = opened.read_all()
    return loads(data, source=name, input_format=fmt)


def _fast_csv_file(opened: Opened, fmt: InputFormat | None) -> Embeddings | None:
    """A long CSV or TSV file read by np.loadtxt straight from disk (see csv_input);
    None for anything else, or whenever the exact parser should have its say."""
    if fmt not in (None, InputFormat.CSV, InputFormat.TSV):
        return None
    if opened.size is None or opened.size < _FAST_MIN_BYTES:
        return None
    head_bytes = opened.head[: opened.head.rfind(b"\n") + 1]  # whole lines only
    try:
        head = head_bytes.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        return None  # the exact parser says what is wrong
    if fmt is None:
        fmt = _sniff(head)
    if fmt is InputFormat.JSON:
        return None
    from .csv_input import from_csv_path

    return from_csv_path(opened.name, head, "\t" if fmt is InputFormat.TSV else ",")


@dataclass
class Opened:
    """An input file opened for reading once: its first bytes, read before anything else
    so binary data is recognised without reading on; `size` for a regular file (None for
    a pipe, a device or `<(...)`, which cannot be read twice)."""

    name: str
    handle: io.BufferedIOBase
    head: bytes
    size: int | None

    def read_all(self) -> bytes:
        """Every byte, `head` included; at most what free memory can hold."""
        limit = reading.available_memory()
        if self.size is not None:
            check_room(self.size, limit, self.name)
            self.handle.seek(0)
            return self.handle.read()
        return self.head + read_rest(self.handle, self.name, len(self.head), limit)

    def seekable(self) -> tuple[io.BufferedIOBase, int]:
        """The input as a file that can seek (a zip archive needs one), at its start,
        and its size: a pipe is read into memory."""
        if self.size is not None:
            self.handle.seek(0)
            return self.handle, self.size
        data = self.read_all()
        return io.BytesIO(data), len(data)


@contextlib.contextmanager
def open_input(name: str, wanted: str) -> Iterator[Opened]:
    """`name` opened for reading, its first HEAD_BYTES read; or an AttnError that says
    why it cannot be read (`wanted` names what to give instead)."""
    if os.path.isdir(name):
        raise AttnError(f"{name} is a directory; give {wanted}")
    try:
        handle = open(name, "rb")  # noqa: SIM115 (closed by the with below)
    except FileNotFoundError:
        raise AttnError(f"{name}: no such file; check the path") from None
    except PermissionError:
        raise AttnError(f"{name}: permission denied; make the file readable") from None
    except OSError as exc:
        raise AttnError(f"{name}: cannot read it ({exc.strerror or exc})") from None
    with handle:
        try:
            status = os.fstat(handle.fileno())
            size = status.st_size if stat.S_ISREG(status.st_mode) else None
            head = handle.read(HEAD_BYTES)
        except OSError as exc:
            raise AttnError(f"{name}: cannot read it ({exc.strerror or exc})") from None
        yield Opened(name, handle, head, size)


def loads(
    data: str | bytes, source: str = "<input>", input_format: InputFormat | None = None
) -> Embeddings:
    """Parse token embeddings from JSON/CSV/TSV text or UTF-8 bytes, or the bytes of a
    .npy or .npz file."""
    if isinstance(data, bytes) and (
        input_format in (InputFormat.NPY, InputFormat.NPZ) or data.startswith(NUMPY_MAGICS)
    ):
        from .numpy_input import embeddings_from_bytes

        return embeddings_from_bytes(data, source, input_format)
    if input_format in (InputFormat.NPY, InputFormat.NPZ):
        raise AttnError(f"{source}: text, not a .{input_format.value} file; drop --input-format")
    raw = data if isinstance(data, bytes) else None
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
        from .json_input import from_json

        return from_json(text, source)
    from .csv_input import from_csv

    delimiter = "\t" if fmt is InputFormat.TSV else ","
    return from_csv(text, source, delimiter, fmt, raw)


# JSON opens with an object, or with a list of something JSON (so a CSV token such as
# "[bold]" in the first cell is not mistaken for JSON).
_JSON_START = re.compile(r'\s*(\{|\[\s*([\[{"\-\d.\]tfnNI]|$))')


def looks_like_json(text: str) -> bool:
    return _JSON_START.match(text) is not None


def _sniff(text: str) -> InputFormat:
    if looks_like_json(text):
        return InputFormat.JSON
    stripped = text.lstrip()
    first_line = stripped.split("\n", 1)[0]
    return InputFormat.TSV if "\t" in first_line else InputFormat.CSV


def is_numeric_text(text: str) -> bool:
    """Whether float() reads `text` as a number (nan and inf included)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


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


def check_finite(
    matrix: NDArray[np.floating[Any]], tokens: Sequence[str], source: str, first_row: int = 0
) -> None:
    """An AttnError naming the first value that is not a finite number."""
    bad = np.argwhere(~np.isfinite(matrix))
    if bad.size:
        i, j = (int(k) for k in bad[0])
        value = float(matrix[i, j])
        what = "a number too large for float64 (beyond ±1.8e308); rescale the embeddings"
        if np.isnan(value) or matrix.dtype.itemsize < 8:
            what = f"{value} is not a finite number; every embedding value must be finite"
        raise AttnError(
            f"{source}: row {first_row + i + 1} (token {tokens[i]!r}), column {j + 1}: {what}"
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
