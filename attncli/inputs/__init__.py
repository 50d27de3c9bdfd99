"""Token embeddings in: a path, text or bytes -> Embeddings(tokens, matrix).

Accepted forms (README "Input formats"):
- JSON `{"tokens": [...], "embeddings": [[...], ...]}` (tokens optional),
- JSON `{"token": [numbers], ...}` (order kept),
- JSON `[[numbers], ...]` (tokens named x1..xn, the book's x^(i)),
- attn's own JSON output of `context`, `queries`, `keys` or `values`,
- CSV or TSV: an optional header; the first column is the token when it is not
  numeric (or the header calls it "token"); the other columns are numbers,
- NumPy: a .npy matrix, or a .npz archive of "embeddings" (and "tokens").

Every input is read once, from its first bytes on: binary data is refused before more
is read, a pipe works like a file, and nothing is memory-mapped (numpy_files.py).
Every problem is an AttnError that names the file, the row and column or token,
and the fix. One reader per format: json_text, csv_text, numpy_files; weights.py reads
--weights files.
"""

from __future__ import annotations

import os

from ..embeddings import Embeddings
from ..errors import AttnError, setting
from .reading import NUMPY_MAGICS, Opened, decode_text, open_input, refuse_binary
from .text import InputFormat, looks_like_json, sniff

__all__ = ["InputFormat", "load", "loads"]

_FAST_MIN_BYTES = 1 << 20  # files this long try the fast CSV path first
_EXTENSIONS = {
    ".json": InputFormat.JSON,
    ".csv": InputFormat.CSV,
    ".tsv": InputFormat.TSV,
    ".npy": InputFormat.NPY,
    ".npz": InputFormat.NPZ,
}


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
            from .numpy_files import embeddings_from_file

            return embeddings_from_file(opened, fmt)
        refuse_binary(opened.head, name)
        fast = _fast_csv_file(opened, fmt)
        if fast is not None:
            return fast
        data = opened.read_all()
    text = decode_text(data, name)
    # JSON needs the text alone: the bytes beside it would be a third of its peak memory
    json_text = fmt is InputFormat.JSON or (fmt is None and looks_like_json(text))
    raw = None if json_text else data
    del data
    return _from_text(text, name, fmt, raw)


def _fast_csv_file(opened: Opened, fmt: InputFormat | None) -> Embeddings | None:
    """A long CSV or TSV file read by np.loadtxt straight from disk (see csv_text);
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
        fmt = sniff(head)
    if fmt is InputFormat.JSON:
        return None
    from .csv_text import from_csv_path

    return from_csv_path(opened.name, head, "\t" if fmt is InputFormat.TSV else ",")


def loads(
    data: str | bytes, source: str = "<input>", input_format: InputFormat | None = None
) -> Embeddings:
    """Parse token embeddings from JSON/CSV/TSV text or UTF-8 bytes, or the bytes of a
    .npy or .npz file."""
    if isinstance(data, bytes) and (
        input_format in (InputFormat.NPY, InputFormat.NPZ) or data.startswith(NUMPY_MAGICS)
    ):
        from .numpy_files import embeddings_from_bytes

        return embeddings_from_bytes(data, source, input_format)
    if input_format in (InputFormat.NPY, InputFormat.NPZ):
        raise AttnError(
            f"{source}: text, not a .{input_format.value} file; drop {setting('input_format')}"
        )
    raw = data if isinstance(data, bytes) else None
    text = data if isinstance(data, str) else decode_text(data, source)
    return _from_text(text, source, input_format, raw)


def _from_text(
    text: str, source: str, input_format: InputFormat | None, raw: bytes | None
) -> Embeddings:
    """Token embeddings from JSON, CSV or TSV text (`raw`: its bytes, if CSV is to have
    them)."""
    text = text.removeprefix("\ufeff")
    if not text or text.isspace():  # as `not text.strip()`, without copying the text
        what = "is empty" if not text else "holds only whitespace"
        raise AttnError(
            f"{source} {what}; expected token embeddings as JSON or CSV "
            "(see sample_inputs/your_journey.json)"
        )
    fmt = input_format or sniff(text)
    if fmt is InputFormat.JSON:
        from .json_text import from_json

        return from_json(text, source)
    from .csv_text import from_csv

    delimiter = "\t" if fmt is InputFormat.TSV else ","
    return from_csv(text, source, delimiter, fmt, raw)
