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
import enum
import io
import json
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


class InputFormat(str, enum.Enum):
    """How INPUT is parsed; detected from the extension, else from the content."""

    JSON = "json"
    CSV = "csv"
    TSV = "tsv"
    NPY = "npy"  # a NumPy array, T x d_in (memory-mapped from a file)
    NPZ = "npz"  # a NumPy archive: "embeddings", and "tokens" if named


_FAST_MIN_BYTES = 1 << 20  # files this long try the fast CSV path first
_EXTENSIONS = {
    ".json": InputFormat.JSON,
    ".csv": InputFormat.CSV,
    ".tsv": InputFormat.TSV,
    ".npy": InputFormat.NPY,
    ".npz": InputFormat.NPZ,
}
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


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
    or the content)."""
    name = os.fspath(path)
    fmt = input_format or _EXTENSIONS.get(os.path.splitext(name)[1].lower())
    if fmt in (InputFormat.NPY, InputFormat.NPZ):
        read_file(name, "a .npy or .npz file", head=True)  # says why a file cannot be read
        return _from_numpy(name, name, fmt)
    fast = _fast_csv_file(name, fmt)
    if fast is not None:
        return fast
    data = read_file(name, "a .json, .csv or .tsv file of embeddings")
    return loads(data, source=name, input_format=fmt)


def _fast_csv_file(name: str, fmt: InputFormat | None) -> Embeddings | None:
    """A long CSV or TSV file read by np.loadtxt straight from disk (see csv_input);
    None for anything else, or whenever the exact parser should have its say."""
    if fmt not in (None, InputFormat.CSV, InputFormat.TSV):
        return None
    try:
        if os.path.getsize(name) < _FAST_MIN_BYTES:
            return None
        with open(name, "rb") as handle:
            head = handle.read(1 << 16).decode("utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None  # the exact parser says what is wrong
    head = head[: head.rfind("\n") + 1]  # whole lines only
    if fmt is None:
        fmt = _sniff(head)
    if fmt is InputFormat.JSON:
        return None
    from .csv_input import from_csv_path

    return from_csv_path(name, head, "\t" if fmt is InputFormat.TSV else ",")


def read_file(name: str, wanted: str, head: bool = False) -> bytes:
    """A file's bytes (the first few with `head`), or an AttnError that says why not
    (`wanted` names what to give)."""
    if os.path.isdir(name):
        raise AttnError(f"{name} is a directory; give {wanted}")
    try:
        with open(name, "rb") as handle:
            return handle.read(16) if head else handle.read()
    except FileNotFoundError:
        raise AttnError(f"{name}: no such file; check the path") from None
    except PermissionError:
        raise AttnError(f"{name}: permission denied; make the file readable") from None
    except OSError as exc:
        raise AttnError(f"{name}: cannot read it ({exc.strerror or exc})") from None


def loads(
    data: str | bytes, source: str = "<input>", input_format: InputFormat | None = None
) -> Embeddings:
    """Parse token embeddings from JSON/CSV/TSV text or UTF-8 bytes, or the bytes of a
    .npy or .npz file."""
    if isinstance(data, bytes) and (
        input_format in (InputFormat.NPY, InputFormat.NPZ)
        or data.startswith((_NPY_MAGIC, _ZIP_MAGIC))
    ):
        fmt = input_format or (InputFormat.NPY if data.startswith(_NPY_MAGIC) else InputFormat.NPZ)
        return _from_numpy(io.BytesIO(data), source, fmt)
    if input_format in (InputFormat.NPY, InputFormat.NPZ):
        raise AttnError(f"{source}: text, not a .{input_format.value} file; drop --input-format")
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
    return from_csv(text, source, delimiter, fmt)


def _from_numpy(file: str | io.BytesIO, source: str, fmt: InputFormat) -> Embeddings:
    """A .npy array (memory-mapped when it is a file) or a .npz archive's "embeddings"
    (and "tokens"), checked like any other input."""
    try:
        if fmt is InputFormat.NPY:
            if isinstance(file, str):
                loaded = np.load(file, mmap_mode="r", allow_pickle=False)
            else:
                loaded = np.load(file, allow_pickle=False)
            if not isinstance(loaded, np.ndarray):
                loaded.close()
                raise AttnError(f"{source}: a .npz archive, not a .npy array; name it .npz")
            matrix, names = loaded, None
        else:
            archive = np.load(file, allow_pickle=False)
            if isinstance(archive, np.ndarray):
                raise AttnError(f"{source}: a .npy array, not a .npz archive; name it .npy")
            with archive:
                keys = list(archive.files)
                if "embeddings" not in keys and len(keys) != 1:
                    held = ", ".join(keys) or "nothing"
                    raise AttnError(
                        f'{source}: a .npz archive needs an array named "embeddings" (and '
                        f'"tokens", if the tokens have names); it holds {held}'
                    )
                matrix = archive["embeddings" if "embeddings" in keys else keys[0]]
                names = archive["tokens"] if "tokens" in keys else None
    except AttnError:
        raise
    except Exception as exc:  # numpy and zipfile raise many kinds for a damaged file
        if isinstance(exc, MemoryError):
            raise
        raise AttnError(
            f"{source}: not a readable .{fmt.value} file ({exc}); save it with "
            f"numpy.{'save' if fmt is InputFormat.NPY else 'savez'}"
        ) from None
    if matrix.ndim != 2 or matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise AttnError(
            f"{source}: the array has shape {matrix.shape}; give a T x d_in matrix, one "
            "row per token (at least one token, one dimension)"
        )
    if matrix.dtype.kind not in "fiu":
        raise AttnError(f"{source}: the array holds {matrix.dtype} values; give numbers")
    if matrix.dtype.kind != "f" or matrix.dtype.itemsize < 4:
        matrix = matrix.astype(np.float64)  # integers and float16: widened once
    if names is None:
        tokens = tuple(f"x{i + 1}" for i in range(matrix.shape[0]))
    else:
        if names.ndim != 1 or len(names) != matrix.shape[0] or names.dtype.kind not in "US":
            raise AttnError(f'{source}: "tokens" must be {matrix.shape[0]} strings, one per row')
        tokens = tuple(str(name) for name in names.tolist())
    for start in range(0, matrix.shape[0], 1 << 16):  # in slices: a memory map stays light
        part = np.asarray(matrix[start : start + (1 << 16)])
        if not np.isfinite(part).all():
            check_finite(part, tokens[start:], source, first_row=start)
    return Embeddings(tokens, matrix, source)


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
