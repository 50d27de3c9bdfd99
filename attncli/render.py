"""AttentionResult -> JSON text | CSV text | a rich table. Returns; never prints.

rich is imported only when a table is drawn, so JSON and CSV output start faster.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from .modes import AttentionResult, Mode

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.style import Style

# What each command shows, named after the book's tensors.
COMMANDS = ("scores", "weights", "context", "queries", "keys", "values")
Kind = Literal["scores", "weights", "vectors"]

# Viridis stops: perceptually even, readable for colour-blind users, dark to light.
_HEAT_STOPS = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))
_MAX_LABEL = 20  # characters of a token shown as a row label before eliding
_MAX_HEADER = 12  # characters of a token shown as a column header before eliding


@dataclass(frozen=True)
class View:
    """One command's matrix, with its labels: what every format shows."""

    command: str
    kind: Kind
    values: NDArray[np.float64]  # (n, m); -inf where a score is masked
    row_labels: tuple[str, ...]  # n tokens
    col_labels: tuple[str, ...]  # m tokens, or d1..dk for vectors
    query_index: int | None


def view(result: AttentionResult, command: str) -> View:
    """Pick the matrix `command` shows from a result (one row when --query was given)."""
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
    return View(command, "vectors", vectors, row_labels, dims, result.query_index)


def params_dict(result: AttentionResult) -> dict[str, Any]:
    """Every setting that produced the numbers (null where the mode has no such thing)."""
    params = result.params
    projected = params.projected
    return {
        "d_in": result.embeddings.d_in,
        "d_out": params.d_out if projected else None,
        "seed": params.seed if projected else None,
        "init": params.init.value if projected else None,
        "scale": result.scale,
    }


# ---------------------------------------------------------------- JSON


def _json_number(value: float) -> float | None:
    # Strict JSON has no -Infinity: a masked score is null.
    return value if math.isfinite(value) else None


def _json_row(row: NDArray[np.float64]) -> str:
    return json.dumps([_json_number(v) for v in row.tolist()], allow_nan=False)


def to_json(result: AttentionResult, command: str) -> str:
    """The result as one strict JSON object (README "JSON output"), full precision.

    Each matrix row sits on its own line: small enough to read, easy for jq."""
    shown = view(result, command)
    query = None
    if shown.query_index is not None:
        query = {"index": shown.query_index, "token": result.tokens[shown.query_index]}
    head: dict[str, Any] = {
        "command": command,
        "mode": result.params.mode.value,
        "tokens": list(result.tokens),
        "query": query,
        "shape": list(shown.values.shape[1:] if query else shown.values.shape),
    }
    lines = ["{"]
    lines += [f"  {json.dumps(key)}: {json.dumps(value)}," for key, value in head.items()]
    if query:
        lines.append(f'  "values": {_json_row(shown.values[0])},')
    else:
        rows = [f"    {_json_row(row)}" for row in shown.values]
        lines.append('  "values": [\n' + ",\n".join(rows) + "\n  ],")
    lines.append(f'  "params": {json.dumps(params_dict(result), allow_nan=False)}')
    lines.append("}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- CSV


def to_csv(result: AttentionResult, command: str) -> str:
    """A header (`token`, then the column tokens or d1..dk), one row per token,
    full precision; a masked score is `-inf`, as the book prints it."""
    shown = view(result, command)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("token", *shown.col_labels))
    for label, row in zip(shown.row_labels, shown.values, strict=True):
        writer.writerow((label, *(repr(v) for v in row.tolist())))
    return buffer.getvalue()


# ---------------------------------------------------------------- table


def _format(value: float, precision: int) -> str:
    if value == -math.inf:
        return "-inf"
    text = f"{value:.{precision}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text  # no "-0.00"


def heat_rgb(fraction: float) -> tuple[int, int, int]:
    """The heat-map colour for a value at `fraction` (0..1) of its colour scale."""
    fraction = min(max(fraction, 0.0), 1.0) * (len(_HEAT_STOPS) - 1)
    low = min(int(fraction), len(_HEAT_STOPS) - 2)
    t = fraction - low
    a, b = _HEAT_STOPS[low], _HEAT_STOPS[low + 1]
    red, green, blue = (round(x + (y - x) * t) for x, y in zip(a, b, strict=True))
    return red, green, blue


def _heat_style(fraction: float) -> Style:
    from rich.color import Color
    from rich.style import Style

    red, green, blue = heat_rgb(fraction)
    luminance = 0.2126 * red + 0.7152 * green + 0.0722 * blue
    text = "black" if luminance > 140 else "white"
    return Style(color=text, bgcolor=Color.from_rgb(red, green, blue))


def heat_fraction(shown: View) -> NDArray[np.float64]:
    """Where each value sits on its colour scale, 0..1.

    Weights use the fixed scale 0..1, so tables compare; through a square root, since
    a row of T weights averages 1/T and would otherwise be one dark colour. Scores and
    vectors use their own range. Masked (-inf) entries come out as NaN: no colour.
    """
    values = shown.values
    if shown.kind == "weights":
        return np.sqrt(np.clip(values, 0.0, 1.0))
    finite = values[np.isfinite(values)]
    if not finite.size:
        return np.full(values.shape, np.nan)
    low, high = float(finite.min()), float(finite.max())
    with np.errstate(invalid="ignore"):
        fraction = (values - low) / (high - low or 1.0)
    return np.where(np.isfinite(values), fraction, np.nan)


def visible_columns(widths: Sequence[int], available: int) -> list[int | None]:
    """Which columns fit in `available` characters: all of them, or the first and last
    ones around a `None` (an elided middle). Each column costs its width plus 3 (padding
    and a border)."""
    if sum(w + 3 for w in widths) <= available:
        return list(range(len(widths)))
    budget = available - 4  # the "…" column
    left: list[int] = []
    right: list[int] = []
    lo, hi = 0, len(widths) - 1
    while lo <= hi:
        take_left = len(left) <= len(right)
        index = lo if take_left else hi
        cost = widths[index] + 3
        if cost > budget:
            break
        budget -= cost
        if take_left:
            left.append(index)
            lo += 1
        else:
            right.append(index)
            hi -= 1
    return [*left, None, *reversed(right)]


def _caption(result: AttentionResult, shown: View, hidden: int) -> str:
    params = result.params
    parts = [f"d_in={result.embeddings.d_in}"]
    if params.projected:
        parts += [
            f"d_out={params.d_out}",
            f"seed={params.seed}",
            f"init={params.init.value}",
            f"scale=1/√{params.d_out}={result.scale:.4g}",
        ]
    else:
        parts.append("inputs as queries, keys, values; no scaling")
    lines = [" · ".join(parts)]
    if params.mode is Mode.CAUSAL and shown.kind != "vectors":
        lines.append("causal: keys after the query (j > i) are masked")
    if hidden:
        lines.append(f"{hidden} columns hidden to fit; -f csv or -f json shows all")
    return "\n".join(lines)


def to_table(
    result: AttentionResult, command: str, precision: int = 4, width: int = 80
) -> RenderableType:
    """A heat-map table of what `command` shows, fitted to `width` columns."""
    from rich import box
    from rich.console import Group
    from rich.padding import Padding
    from rich.style import Style
    from rich.table import Table
    from rich.text import Text

    shown = view(result, command)
    n_rows, n_cols = shown.values.shape
    fractions = heat_fraction(shown)
    masked = ~np.isfinite(shown.values)
    weights_masked = result.params.mode is Mode.CAUSAL and shown.kind == "weights"
    if weights_masked:
        # A causal weight above the diagonal is 0 by construction, not by chance.
        masked = np.arange(n_cols)[np.newaxis, :] > result.rows[:, np.newaxis]

    label_width = min(max(len(label) for label in shown.row_labels), _MAX_LABEL)
    cells = [[_format(v, precision) for v in row] for row in shown.values.tolist()]
    col_widths = [
        max(min(len(label), _MAX_HEADER), *(len(cells[i][j]) for i in range(n_rows)))
        for j, label in enumerate(shown.col_labels)
    ]
    columns = visible_columns(col_widths, width - label_width - 4)
    hidden = n_cols - sum(1 for c in columns if c is not None)

    title = f"attn {command} · {result.params.mode.value} · {n_rows}×{n_cols}"  # noqa: RUF001
    if shown.query_index is not None:
        title = (
            f"attn {command} · {result.params.mode.value} · "
            f"query {result.tokens[shown.query_index]!r} (#{shown.query_index})"
        )
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        header_style="bold",
        pad_edge=True,
    )
    query_style = "bold underline"
    bold = Style(bold=True)  # the row maximum: readable without colour too
    table.add_column("", style="bold", no_wrap=True, overflow="ellipsis", max_width=_MAX_LABEL)
    for c in columns:
        if c is None:
            table.add_column("…", justify="center", no_wrap=True)
            continue
        header = Text(shown.col_labels[c], no_wrap=True, overflow="ellipsis")
        if shown.kind != "vectors" and c == shown.query_index:
            header.stylize(query_style)
        table.add_column(header, justify="right", no_wrap=True, width=col_widths[c])

    for i in range(n_rows):
        row = shown.values[i]
        finite = row[np.isfinite(row)]
        row_max = float(finite.max()) if finite.size and shown.kind != "vectors" else None
        label = Text(shown.row_labels[i], no_wrap=True, overflow="ellipsis")
        if shown.query_index is not None:
            label.stylize(query_style)
        rendered: list[Text | str] = [label]
        for c in columns:
            if c is None:
                rendered.append(Text("…", style="dim"))
                continue
            if masked[i, c]:
                rendered.append(Text(cells[i][c] if not weights_masked else "0", style="dim"))
                continue
            value = float(row[c])
            style = _heat_style(float(fractions[i, c]))
            if row_max is not None and value == row_max:
                style = style + bold
            # padded to the column's width so the colour fills the cell evenly
            rendered.append(Text(cells[i][c].rjust(col_widths[c]), style=style))
        table.add_row(*rendered)
    # Title and parameters go above and below the table rather than in its title and
    # caption, which rich would wrap to the table's width (narrow for a single vector).
    heading = Padding(Text(title, style="bold"), (0, 0, 0, 1), expand=False)
    caption = Padding(
        Text(_caption(result, shown, hidden), style="dim"), (1, 0, 0, 1), expand=False
    )
    return Group(heading, table, caption)
