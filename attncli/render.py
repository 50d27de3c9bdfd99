"""Results -> what a command shows (View), and JSON | CSV | .npy (as streamed pieces) |
Markdown. Returns; never prints. Tables and pictures are render_table.py's.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from .attention import AttentionResult, Prepared
from .errors import shown_text

# What each command shows, named after the book's tensors.
COMMANDS = ("scores", "weights", "context", "queries", "keys", "values")
Kind = Literal["scores", "weights", "vectors"]


@dataclass(frozen=True)
class View:
    """One command's matrices, one per head, with their labels: what every format shows."""

    command: str
    kind: Kind
    values: NDArray[np.floating[Any]]  # (H, n, m); -inf where a score is masked; H = 1 for vectors
    row_labels: tuple[str, ...]  # n tokens
    col_labels: tuple[str, ...]  # m tokens, or d1..dk for vectors
    query_index: int | None

    @property
    def heads(self) -> int:
        return int(self.values.shape[0])

    def data(self) -> NDArray[np.floating[Any]]:
        """The values as JSON holds them: without the head axis for one head, without
        the row axis for one --query row."""
        values = self.values[0] if self.heads == 1 else self.values  # (H, n, m) -> (n, m)
        return values[..., 0, :] if self.query_index is not None else values


def view(result: AttentionResult, command: str) -> View:
    """Pick what `command` shows from a result (one row when --query was given)."""
    rows = result.rows
    tokens = result.tokens
    row_labels = tuple(tokens[i] for i in rows)
    if command in ("scores", "weights"):
        matrix = result.attn_scores if command == "scores" else result.attn_weights
        kind: Kind = "scores" if command == "scores" else "weights"
        return View(command, kind, matrix, row_labels, tokens, result.query_index)
    vectors = {
        "context": result.context_vecs,
        "queries": result.queries,
        "keys": result.keys[rows],
        "values": result.values[rows],
    }[command]
    dims = tuple(f"d{k + 1}" for k in range(vectors.shape[1]))
    return View(
        command, "vectors", vectors[np.newaxis], row_labels, dims, result.query_index
    )  # (n, d) -> (1, n, d)


@dataclass(frozen=True)
class Layout:
    """The shape of a streamed output: the rows come as 2-D blocks, head after head."""

    command: str
    heads: int  # several only for scores and weights
    rows: tuple[str, ...]  # the token of each row
    columns: tuple[str, ...]  # the tokens of the columns, or d1..dk
    query: int | None

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of `values`: no head axis for one head, no row axis for a query."""
        shape: tuple[int, ...] = (self.heads, len(self.rows), len(self.columns))
        if self.heads == 1:
            shape = shape[1:]
        if self.query is not None:
            shape = (*shape[:-2], shape[-1])
        return shape


def _rows_of(blocks: Iterable[NDArray[np.floating[Any]]]) -> Iterator[NDArray[np.floating[Any]]]:
    for block in blocks:
        yield from block


# From this size on, numbers are shown as 1.2346e+38: fixed decimals would print dozens
# of digits that float64 does not even hold.
LARGE_NUMBER = 1e15


def format_number(value: float, precision: int) -> str:
    """A number at `precision` decimals as tables show it (-inf stays; no -0.00; huge
    numbers in scientific notation).

    >>> format_number(-0.00001, 4), format_number(2.5e38, 4)
    ('0.0000', '2.5000e+38')
    """
    if value == -math.inf:
        return "-inf"
    if abs(value) >= LARGE_NUMBER:
        return f"{value:.{precision}e}"
    text = f"{value:.{precision}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text  # no "-0.00"


def settings_line(result: AttentionResult) -> str:
    """The parameters that made a result, in one line: d_in=3 · d_out=2 · init=rand · ..."""
    params = result.params
    settings = result.prepared.settings()
    parts = [f"d_in={settings['d_in']}"]
    if params.projected:
        parts.append(f"d_out={settings['d_out']}")
        if result.heads > 1:
            kind = "wrapper of " if settings["wrapper"] else ""
            parts.append(f"{kind}{result.heads} heads of {result.head_dim}")
        if settings["weights"]:
            parts.append(f"weights={shown_text(settings['weights'])}")
        else:
            parts += [f"init={settings['init']}", f"seed={params.seed}"]
        if settings["qkv_bias"]:
            parts.append("qkv_bias")
        parts.append(f"scale=1/√{result.head_dim}={result.scale:.4g}")
        if params.batch > 1:
            parts.append(f"batch item 0 of {params.batch}")
    else:
        parts.append("inputs as queries, keys, values; no scaling")
    return " · ".join(parts)


# ---------------------------------------------------------------- JSON


def _json_number(value: float) -> float | None:
    # Strict JSON has no -Infinity: a masked score is null.
    return value if math.isfinite(value) else None


def _json_row(row: NDArray[np.floating[Any]]) -> str:
    values = row.tolist()
    if not np.isfinite(row).all():
        values = [_json_number(v) for v in values]
    return json.dumps(values, allow_nan=False)


def json_chunks(
    prepared: Prepared, layout: Layout, blocks: Iterable[NDArray[np.floating[Any]]]
) -> Iterator[str]:
    """The output as one strict JSON object (README "JSON output"), at full precision,
    as text pieces: each innermost row on a line of its own, readable and jq-friendly,
    and never the whole document in memory."""
    embeddings = prepared.embeddings
    query = None
    if layout.query is not None:
        query = {"index": layout.query, "token": embeddings.tokens[layout.query]}
    head = {
        "command": layout.command,
        "mode": prepared.params.mode.value,
        "tokens": list(embeddings.tokens),
        "query": query,
        "shape": list(layout.shape),
    }
    yield "{\n" + "".join(f"  {json.dumps(k)}: {json.dumps(v)},\n" for k, v in head.items())
    yield '  "values": '
    shape = layout.shape
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
    layout, blocks = _layout_of(result, command)
    return "".join(json_chunks(result.prepared, layout, blocks))


# ---------------------------------------------------------------- CSV


def csv_chunks(layout: Layout, blocks: Iterable[NDArray[np.floating[Any]]]) -> Iterator[str]:
    """A header (`token`, then the column tokens or d1..dk), one row per token, full
    precision; with several heads a `head` column (0, 1, ...) comes first. A masked
    score is `-inf`, as the book prints it.

    Tokens are shown as tables show them (errors.shown_text): CSV is read line by line
    (head, grep, wc -l) and printed to terminals, so a newline or an escape sequence in a
    token must not reach it raw, and a lone surrogate cannot be written as UTF-8 at all.
    JSON keeps the exact text."""
    by_head = layout.heads > 1
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = map(shown_text, layout.columns)
    writer.writerow((*(("head",) if by_head else ()), "token", *columns))
    rows = [shown_text(token) for token in layout.rows]
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
    layout, blocks = _layout_of(result, command)
    return "".join(csv_chunks(layout, blocks))


# ---------------------------------------------------------------- Markdown

_MARKDOWN_SPECIAL = str.maketrans({c: "\\" + c for c in "\\|*_`[]<>#~"})


def _md(text: str) -> str:
    """A token as Markdown shows it literally: control characters escaped (a newline
    would end the row), then Markdown's own characters (a `|` would split the cell)."""
    return shown_text(text).translate(_MARKDOWN_SPECIAL) or " "


def to_markdown(result: AttentionResult, command: str, precision: int = 4) -> str:
    """A GitHub-flavoured Markdown table (one per head) at `precision` decimals, ready to
    paste into a post: tokens as row and column headers, each row's largest value in
    bold, masked (and dropped) cells in italics, the settings below."""
    shown = view(result, command)
    heads = shown.heads
    masked = masked_cells(result, shown)
    lines: list[str] = []
    for h in range(heads):
        if heads > 1:
            lines += [f"**{command}, head {h} of {heads}**", ""]
        lines.append("| token | " + " | ".join(_md(c) for c in shown.col_labels) + " |")
        lines.append("|---|" + "---:|" * len(shown.col_labels))
        for i, label in enumerate(shown.row_labels):
            row = shown.values[h, i]
            finite = row[np.isfinite(row)]
            row_max = float(finite.max()) if finite.size and shown.kind != "vectors" else None
            cells = []
            for j, value in enumerate(row.tolist()):
                text = format_number(value, precision)
                if masked is not None and masked[h, i, j]:
                    text = f"*{text if shown.kind == 'scores' else '0'}*"
                elif row_max is not None and value == row_max:
                    text = f"**{text}**"
                cells.append(text)
            name = _md(label)
            if shown.query_index is not None:
                name = f"**{name}**"
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    notes = [settings_line(result)]
    if masked is not None:
        notes.append("*italic*: masked (causal) or dropped (dropout); **bold**: each row's largest")
    elif shown.kind != "vectors":
        notes.append("**bold**: each row's largest")
    lines.append("<sub>" + " · ".join(_md_plain(note) for note in notes) + "</sub>")
    return "\n".join(lines) + "\n"


def _md_plain(text: str) -> str:
    return text.replace("|", "\\|")


def hidden_cells(result: AttentionResult, shown: View) -> NDArray[np.bool_]:
    """(n, m): the cells of scores or weights that the mask hides (none for vectors):
    -inf scores, and weights that are 0 by construction, not by chance."""
    n_cols = shown.values.shape[2]
    if shown.kind == "vectors" or not result.mask.hides_any:
        return np.zeros((len(result.rows), n_cols), dtype=bool)
    return result.mask.hidden(result.rows, 0, n_cols)


def masked_cells(result: AttentionResult, shown: View) -> NDArray[np.bool_] | None:
    """(H, n, m): cells that are masked or dropped rather than computed, if any."""
    if shown.kind == "vectors":
        return None
    masked = np.broadcast_to(hidden_cells(result, shown), shown.values.shape)
    if shown.kind == "weights" and result.dropout_keep is not None:
        masked = masked | ~result.dropout_keep
    return masked if masked.any() else None


# ---------------------------------------------------------------- .npy


def npy_chunks(
    layout: Layout, blocks: Iterable[NDArray[np.floating[Any]]], dtype: np.dtype[Any]
) -> Iterator[bytes]:
    """A NumPy .npy file of `values` (masked scores are -inf), header first, then the
    rows as they come."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header,
        {
            "descr": np.lib.format.dtype_to_descr(dtype),
            "fortran_order": False,
            "shape": layout.shape,
        },
    )
    yield header.getvalue()
    for block in blocks:
        yield np.ascontiguousarray(block, dtype=dtype).tobytes()


def _layout_of(
    result: AttentionResult, command: str
) -> tuple[Layout, list[NDArray[np.floating[Any]]]]:
    shown = view(result, command)
    layout = Layout(command, shown.heads, shown.row_labels, shown.col_labels, shown.query_index)
    return layout, list(shown.values)  # one (n, m) block per head
