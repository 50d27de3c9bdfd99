"""Results -> JSON | CSV | .npy (as streamed pieces) | a rich table. Returns; never prints.

rich is imported only when a table is drawn, so JSON and CSV output start faster.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from .loading import Embeddings
from .modes import AttentionParams, AttentionResult, Mode, Projections
from .rng import dropout_scale

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
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


class Setup(Protocol):
    """What produced the numbers: an AttentionResult or an attention.Prepared."""

    @property
    def embeddings(self) -> Embeddings: ...
    @property
    def params(self) -> AttentionParams: ...
    @property
    def weights(self) -> Projections | None: ...
    @property
    def heads(self) -> int: ...
    @property
    def scale(self) -> float: ...
    @property
    def keys(self) -> NDArray[np.floating[Any]]: ...


def params_dict(setup: Setup) -> dict[str, Any]:
    """Every setting that produced the numbers (null where the mode has no such thing)."""
    params = setup.params
    if not params.projected:
        return {
            "d_in": setup.embeddings.d_in,
            "d_out": None,
            "seed": None,
            "init": None,
            "scale": setup.scale,
            "heads": 1,
            "head_dim": None,
            "wrapper": None,
            "qkv_bias": None,
            "dropout": None,
            "dropout_seed": None,
            "weights": None,
            "parameters": 0,
            "dtype": params.dtype.value,
        }
    weights = setup.weights
    file = weights.file if weights is not None else None
    seed_used = file is None or (params.dropout > 0 and params.dropout_seed is None)
    d_out = int(setup.keys.shape[1])
    return {
        "d_in": setup.embeddings.d_in,
        "d_out": d_out,
        "seed": params.seed if seed_used else None,
        "init": None if file else params.init.value,
        "scale": setup.scale,
        "heads": setup.heads,
        "head_dim": d_out // setup.heads,
        "wrapper": setup.heads > 1 and (weights is not None and weights.W_out is None),
        "qkv_bias": weights is not None and weights.b_query is not None,
        "dropout": params.dropout,
        "dropout_seed": params.dropout_seed,
        "weights": file,
        "parameters": weights.parameters if weights is not None else 0,
        "dtype": params.dtype.value,
    }


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
    setup: Setup, layout: Layout, blocks: Iterable[NDArray[np.floating[Any]]]
) -> Iterator[str]:
    """The output as one strict JSON object (README "JSON output"), at full precision,
    as text pieces: each innermost row on a line of its own, readable and jq-friendly,
    and never the whole document in memory."""
    embeddings = setup.embeddings
    query = None
    if layout.query is not None:
        query = {"index": layout.query, "token": embeddings.tokens[layout.query]}
    head = {
        "command": layout.command,
        "mode": setup.params.mode.value,
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
    yield f',\n  "params": {json.dumps(params_dict(setup), allow_nan=False)}\n}}\n'


def to_json(result: AttentionResult, command: str) -> str:
    """A result as attn's JSON output (the whole text at once)."""
    layout, blocks = _layout_of(result, command)
    return "".join(json_chunks(result, layout, blocks))


# ---------------------------------------------------------------- CSV


def csv_chunks(layout: Layout, blocks: Iterable[NDArray[np.floating[Any]]]) -> Iterator[str]:
    """A header (`token`, then the column tokens or d1..dk), one row per token, full
    precision; with several heads a `head` column (0, 1, ...) comes first. A masked
    score is `-inf`, as the book prints it."""
    by_head = layout.heads > 1
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow((*(("head",) if by_head else ()), "token", *layout.columns))
    n_rows = len(layout.rows)
    index = 0
    for block in blocks:
        for row in block.tolist():
            label = layout.rows[index % n_rows]
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
    """A token as Markdown shows it literally (a `|` would split the cell)."""
    return text.translate(_MARKDOWN_SPECIAL) or " "


def to_markdown(result: AttentionResult, command: str, precision: int = 4) -> str:
    """A GitHub-flavoured Markdown table (one per head) at `precision` decimals, ready to
    paste into a post: tokens as row and column headers, each row's largest value in
    bold, masked (and dropped) cells in italics, the settings below."""
    shown = view(result, command)
    heads = shown.heads
    masked = _masked_cells(result, shown)
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
                text = _format(value, precision)
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


def _masked_cells(result: AttentionResult, shown: View) -> NDArray[np.bool_] | None:
    """(H, n, m): cells that are masked or dropped rather than computed, if any."""
    if shown.kind == "vectors":
        return None
    masked = ~np.isfinite(shown.values)
    if result.params.mode is Mode.CAUSAL and shown.kind == "weights":
        future = np.arange(shown.values.shape[2])[np.newaxis, :] > result.rows[:, np.newaxis]
        masked = masked | future[np.newaxis]
    if shown.kind == "weights" and result.dropout_keep is not None:
        masked = masked | ~result.dropout_keep
    return masked if masked.any() else None


# ---------------------------------------------------------------- SVG and HTML

PICTURE_WIDTH = 120  # the widest a picture gets; narrower tables make narrower pictures


def export_picture(renderable: RenderableType, kind: str, title: str, color: bool = True) -> str:
    """A rich renderable as the terminal would show it, as an SVG picture or a
    standalone HTML page, as wide as it needs (at most PICTURE_WIDTH columns)."""
    from rich.console import Console
    from rich.measure import Measurement

    probe = Console(width=PICTURE_WIDTH, file=io.StringIO())
    needed = Measurement.get(probe, probe.options, renderable).maximum
    console = Console(
        width=max(20, min(PICTURE_WIDTH, needed)),
        file=io.StringIO(),
        record=True,
        force_terminal=True,
        color_system="truecolor",
        highlight=False,
    )
    console.print(renderable if color else _Colourless(renderable))
    if kind == "svg":
        return console.export_svg(title=title)
    return console.export_html(inline_styles=True)


class _Colourless:
    """A renderable drawn without colour (bold, dim and italics stay): a recorded
    console keeps the colours of what it prints even with no_color set."""

    def __init__(self, renderable: RenderableType) -> None:
        self.renderable = renderable

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.segment import Segment

        yield from Segment.remove_color(console.render(self.renderable, options))


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


def heat_fraction(shown: View) -> NDArray[np.floating[Any]]:
    """Where each value sits on its colour scale, 0..1.

    Weights use the fixed scale 0..1, so tables compare; through a square root, since
    a row of T weights averages 1/T and would otherwise be one dark colour. Scores and
    vectors use their own range. Masked (-inf) entries come out as NaN: no colour.
    """
    values = shown.values
    if shown.kind == "weights":
        rooted: NDArray[np.floating[Any]] = np.sqrt(np.clip(values, 0.0, 1.0))
        return rooted
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


def settings_line(result: AttentionResult) -> str:
    """The parameters that made a result, in one line: d_in=3 · d_out=2 · init=rand · ..."""
    params = result.params
    settings = params_dict(result)
    parts = [f"d_in={settings['d_in']}"]
    if params.projected:
        parts.append(f"d_out={settings['d_out']}")
        if result.heads > 1:
            kind = "wrapper of " if settings["wrapper"] else ""
            parts.append(f"{kind}{result.heads} heads of {result.head_dim}")
        if settings["weights"]:
            parts.append(f"weights={settings['weights']}")
        else:
            parts += [f"init={settings['init']}", f"seed={params.seed}"]
        if settings["qkv_bias"]:
            parts.append("qkv_bias")
        parts.append(f"scale=1/√{result.head_dim}={result.scale:.4g}")
    else:
        parts.append("inputs as queries, keys, values; no scaling")
    return " · ".join(parts)


def _caption(result: AttentionResult, shown: View, hidden: int) -> str:
    params = result.params
    lines = [settings_line(result)]
    if params.mode is Mode.CAUSAL and shown.kind != "vectors":
        lines.append("causal: keys after the query (j > i) are masked")
    if params.projected and params.dropout > 0 and shown.command in ("weights", "context"):
        seed = params.dropout_seed if params.dropout_seed is not None else params.seed
        what = "weights shown" if shown.kind == "weights" else "context from weights"
        lines.append(
            f"dropout p={params.dropout:g} (seed {seed}): {what} after dropout, kept ones "
            f"×{dropout_scale(params.dropout):.6g}"
        )
    shown_rows = len(result.rows)
    left_out = len(result.tokens) - shown_rows if result.query_index is None else 0
    if hidden or left_out:
        parts = [f"{hidden} columns"] if hidden else []
        parts += [f"{left_out} rows"] if left_out else []
        lines.append(f"{' and '.join(parts)} not shown; -f csv or -f json shows all")
    return "\n".join(lines)


def to_table(
    result: AttentionResult, command: str, precision: int = 4, width: int = 80
) -> RenderableType:
    """Heat-map tables of what `command` shows (one per head), fitted to `width` columns."""
    from rich.console import Group
    from rich.padding import Padding
    from rich.text import Text

    shown = view(result, command)
    heads, _, n_cols = shown.values.shape
    label_width = min(max(len(label) for label in shown.row_labels), _MAX_LABEL)
    headers = np.array([min(len(label), _MAX_HEADER) for label in shown.col_labels])
    col_widths = np.maximum(headers, _number_widths(shown.values, precision)).tolist()
    columns = visible_columns(col_widths, width - label_width - 4)
    hidden = n_cols - sum(1 for c in columns if c is not None)
    # only the cells on screen are formatted: a long input has many columns
    cells = {
        c: [[_format(v, precision) for v in shown.values[h, :, c].tolist()] for h in range(heads)]
        for c in columns
        if c is not None
    }

    n_tokens = len(result.tokens)
    what = f"{n_tokens}×{n_cols}"
    if shown.query_index is not None:
        what = f"query {result.tokens[shown.query_index]!r} (#{shown.query_index})"
    parts: list[RenderableType] = []
    for h in range(heads):
        head = f" · head {h} of {heads}" if heads > 1 else ""
        title = f"attn {command} · {result.params.mode.value}{head} · {what}"
        if h:
            parts.append(Text(""))
        # Titles and parameters sit outside the table: rich would wrap a table's own
        # title and caption to the table's width, narrow for a single vector.
        parts.append(Padding(Text(title, style="bold"), (0, 0, 0, 1), expand=False))
        head_cells = {c: column[h] for c, column in cells.items()}
        parts.append(_head_table(result, shown, h, head_cells, col_widths, columns))
    caption = Text(_caption(result, shown, hidden), style="dim")
    parts.append(Padding(caption, (1, 0, 0, 1), expand=False))
    return Group(*parts)


def _number_widths(values: NDArray[np.floating[Any]], precision: int) -> NDArray[np.intp]:
    """The width of each column's widest number at `precision` decimals (-inf: 4)."""
    magnitude = np.abs(np.where(np.isfinite(values), values, 0.0))
    rounded = np.round(magnitude, precision)
    with np.errstate(divide="ignore"):
        digits = np.where(rounded >= 1, np.floor(np.log10(np.maximum(rounded, 1))) + 1, 1)
    negative = (values < 0) & (rounded > 0)  # -0.0000 prints as 0.0000
    widths = digits + negative + (precision + 1 if precision else 0)
    widths = np.where(np.isneginf(values), 4, widths)
    column_widths: NDArray[np.intp] = widths.max(axis=(0, 1)).astype(np.intp)  # (H, n, m) -> (m,)
    return column_widths


def _head_table(
    result: AttentionResult,
    shown: View,
    head: int,
    cells: dict[int, list[str]],
    col_widths: list[int],
    columns: list[int | None],
) -> RenderableType:
    """The table of one head's matrix (the only one for vectors)."""
    from rich import box
    from rich.style import Style
    from rich.table import Table
    from rich.text import Text

    values = shown.values[head]  # (n, m)
    n_rows, n_cols = values.shape
    fractions = heat_fraction(shown)[head]
    masked = ~np.isfinite(values)
    causal_weights = result.params.mode is Mode.CAUSAL and shown.kind == "weights"
    if causal_weights:
        # A causal weight above the diagonal is 0 by construction, not by chance.
        masked = np.arange(n_cols)[np.newaxis, :] > result.rows[:, np.newaxis]
    dropped = None
    if shown.kind == "weights" and result.dropout_keep is not None:
        dropped = ~result.dropout_keep[head] & ~masked

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold", pad_edge=True)
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

    rows = result.rows
    for i in range(n_rows):
        if i and rows[i] != rows[i - 1] + 1:  # a long input: its middle rows left out
            gap = Text(f"⋮ {int(rows[i] - rows[i - 1] - 1)} more", style="dim")
            table.add_row(gap, *("" for _ in columns))
        row = values[i]
        finite = row[np.isfinite(row)]
        row_max = float(finite.max()) if finite.size and shown.kind != "vectors" else None
        label = Text(shown.row_labels[i], no_wrap=True, overflow="ellipsis")
        if shown.query_index is not None:
            label.stylize(query_style)
        rendered: list[Text | str] = [label]
        for c in columns:
            if c is None:
                rendered.append(Text("…", style="dim"))
            elif masked[i, c]:
                rendered.append(Text(cells[c][i] if not causal_weights else "0", style="dim"))
            elif dropped is not None and dropped[i, c]:
                rendered.append(Text("0", style="dim italic"))
            else:
                style = _heat_style(float(fractions[i, c]))
                if row_max is not None and float(row[c]) == row_max:
                    style = style + bold
                # padded to the column's width so the colour fills the cell evenly
                rendered.append(Text(cells[c][i].rjust(col_widths[c]), style=style))
        table.add_row(*rendered)
    return table
