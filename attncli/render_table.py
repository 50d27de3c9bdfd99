"""The heat-map tables of rich, and SVG or HTML pictures of them. Returns; never prints.

rich is imported only when a table is drawn, so JSON and CSV output start faster.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from .modes import AttentionResult, Mode
from .render import View, format_number, settings_line, view
from .rng import dropout_scale

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
    from rich.style import Style

# Viridis stops: perceptually even, readable for colour-blind users, dark to light.
_HEAT_STOPS = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))
_MAX_LABEL = 20  # characters of a token shown as a row label before eliding
_MAX_HEADER = 12  # characters of a token shown as a column header before eliding


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
        c: [
            [format_number(v, precision) for v in shown.values[h, :, c].tolist()]
            for h in range(heads)
        ]
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
