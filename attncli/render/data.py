"""The data formats, written as they are computed: strict JSON, CSV and .npy, each as
a stream of pieces from blocks of rows, so that memory stays bounded however long the
input, and nothing is written before every error has had its chance (the writers
compute, then hand out the pieces).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ..errors import shown_text
from .view import View, view

if TYPE_CHECKING:
    from ..attention import AttentionResult, Prepared

Blocks = Iterable[NDArray[np.floating[Any]]]  # 2-D blocks of rows, head after head


def _rows_of(blocks: Blocks) -> Iterator[NDArray[np.floating[Any]]]:
    for block in blocks:
        yield from block


# ---------------------------------------------------------------- JSON


def _json_number(value: float) -> float | None:
    # Strict JSON has no -Infinity: a masked score is null.
    return value if math.isfinite(value) else None


def _json_row(row: NDArray[np.floating[Any]]) -> str:
    values = row.tolist()
    if not np.isfinite(row).all():
        values = [_json_number(v) for v in values]
    return json.dumps(values, allow_nan=False)


def json_chunks(prepared: Prepared, shown: View, blocks: Blocks) -> Iterator[str]:
    """The output as one strict JSON object (README "JSON output"), at full precision,
    as text pieces: each innermost row on a line of its own, readable and jq-friendly,
    and never the whole document in memory."""
    embeddings = prepared.embeddings
    query = None
    if shown.query_index is not None:
        query = {"index": shown.query_index, "token": embeddings.tokens[shown.query_index]}
    head = {
        "command": shown.command,
        "mode": prepared.params.mode.value,
        "tokens": list(embeddings.tokens),
        **({"key_tokens": list(prepared.key_tokens)} if prepared.kv is not None else {}),
        "query": query,
        "shape": list(shown.shape),
    }
    yield "{\n" + "".join(f"  {json.dumps(k)}: {json.dumps(v)},\n" for k, v in head.items())
    yield '  "values": '
    shape = shown.shape
    rows = _rows_of(blocks)
    if len(shape) == 1:
        yield _json_row(next(rows))
    else:
        per_group = shape[1] if len(shape) == 3 else None  # rows in each head's list
        indent = "    " if per_group is None else "      "
        yield "[\n" + ("    [\n" if per_group else "")
        for i, row in enumerate(rows):
            if i:
                if per_group and i % per_group == 0:
                    yield "\n    ],\n    [\n"
                else:
                    yield ",\n"
            yield indent + _json_row(row)
        yield ("\n    ]" if per_group else "") + "\n  ]"
    yield f',\n  "params": {json.dumps(prepared.settings(), allow_nan=False)}\n}}\n'


def to_json(result: AttentionResult, command: str) -> str:
    """A result as attn's JSON output (the whole text at once)."""
    shown, blocks = _whole(result, command)
    return "".join(json_chunks(result.prepared, shown, blocks))


# ---------------------------------------------------------------- CSV


def csv_chunks(shown: View, blocks: Blocks) -> Iterator[str]:
    """A header (`token`, then the column tokens or d1..dk), one row per token, full
    precision; with several heads a `head` column (0, 1, ...) comes first. A masked
    score is `-inf`, as the book prints it.

    Tokens are shown as tables show them (errors.shown_text): CSV is read line by line
    (head, grep, wc -l) and printed to terminals, so a newline or an escape sequence in a
    token must not reach it raw, and a lone surrogate cannot be written as UTF-8 at all.
    JSON keeps the exact text."""
    by_head = shown.heads > 1
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = map(shown_text, shown.col_labels)
    writer.writerow((*(("head",) if by_head else ()), "token", *columns))
    rows = [shown_text(token) for token in shown.row_labels]
    n_rows = len(rows)
    index = 0
    for block in blocks:
        for row in block.tolist():
            label = rows[index % n_rows]
            cells = (label, *map(repr, row))
            writer.writerow((index // n_rows, *cells) if by_head else cells)
            index += 1
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def to_csv(result: AttentionResult, command: str) -> str:
    """A result as attn's CSV output (the whole text at once)."""
    shown, blocks = _whole(result, command)
    return "".join(csv_chunks(shown, blocks))


# ---------------------------------------------------------------- .npy


def npy_chunks(shown: View, blocks: Blocks, dtype: np.dtype[Any]) -> Iterator[bytes]:
    """A NumPy .npy file of `values` (masked scores are -inf), header first, then the
    rows as they come."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header,
        {
            "descr": np.lib.format.dtype_to_descr(dtype),
            "fortran_order": False,
            "shape": shown.shape,
        },
    )
    yield header.getvalue()
    for block in blocks:
        yield np.ascontiguousarray(block, dtype=dtype).tobytes()


def _whole(result: AttentionResult, command: str) -> tuple[View, list[NDArray[np.floating[Any]]]]:
    shown = view(result, command)
    return shown, list(shown.matrices)  # one (n, m) block per head
