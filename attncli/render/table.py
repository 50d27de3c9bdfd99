"""The heat-map tables of rich. Returns renderables; never prints.

rich is imported only when a table is drawn, so JSON and CSV output start faster.
User text (tokens, file names) goes to rich as escaped Text (errors.shown_text), never
as markup.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ..errors import shown_text
from ..rng import dropout_scale
from .view import (
    LARGE_NUMBER,
    View,
    empty_rows_text,
    format_number,
    hidden_cells,
    settings_line,
    view,
)

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
    from rich.measure import Measurement
    from rich.segment import Segment
    from rich.style import Style

    from ..attention import AttentionResult

RGB = tuple[int, int, int]

# Viridis stops: perceptually even, readable for colour-blind users, dark to light.
_HEAT_STOPS = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))
_MAX_LABEL = 20  # characters of a token shown as a row label before eliding
_MAX_HEADER = 12  # characters of a token shown as a column header before eliding


def heat_rgb(fraction: float) -> RGB:
    """The heat-map colour for a value at `fraction` (0..1) of its colour scale."""
    fraction = min(max(fraction, 0.0), 1.0) * (len(_HEAT_STOPS) - 1)
    low = min(int(fraction), len(_HEAT_STOPS) - 2)
    t = fraction - low
    a, b = _HEAT_STOPS[low], _HEAT_STOPS[low + 1]
    red, green, blue = (round(x + (y - x) * t) for x, y in zip(a, b, strict=True))
    return red, green, blue


def relative_luminance(rgb: RGB) -> float:
    """WCAG 2.x relative luminance of an sRGB colour, 0 (black) to 1 (white)."""

    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    red, green, blue = map(linear, rgb)
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast_ratio(first: RGB, second: RGB) -> float:
    """WCAG 2.x contrast ratio of two colours, 1 to 21 (text wants at least 4.5)."""
    darker, lighter = sorted((relative_luminance(first), relative_luminance(second)))
    return (lighter + 0.05) / (darker + 0.05)


_BLACK: RGB = (0, 0, 0)
_WHITE: RGB = (255, 255, 255)


@functools.lru_cache(maxsize=1024)
def text_rgb(background: RGB) -> RGB:
    """Black or white, whichever reads better on `background`: at least 4.58:1 on any
    colour. Exact colours, not the terminal's "black" and "white", which a theme may
    make grey (light grey on mid teal was 2.3:1)."""
    on_black, on_white = contrast_ratio(background, _BLACK), contrast_ratio(background, _WHITE)
    return _BLACK if on_black >= on_white else _WHITE


def heat_style(fraction: float) -> Style:
    """The style of a table cell at `fraction` (0..1) of its colour scale."""
    from rich.color import Color
    from rich.style import Style

    background = heat_rgb(fraction)
    return Style(color=Color.from_rgb(*text_rgb(background)), bgcolor=Color.from_rgb(*background))


def heat_fraction(shown: View) -> NDArray[np.floating[Any]]:
    """Where each value sits on its colour scale, 0..1.

    Weights use the fixed scale 0..1, so tables compare; through a square root, since
    a row of T weights averages 1/T and would otherwise be one dark colour. Scores and
    vectors use their own range. Masked (-inf) entries come out as NaN: no colour.
    """
    values = shown.matrices
    if shown.kind == "weights":
        rooted: NDArray[np.floating[Any]] = np.sqrt(np.clip(values, 0.0, 1.0))
        return rooted
    finite = values[np.isfinite(values)]
    if not finite.size:
        return np.full(values.shape, np.nan)
    low, high = float(finite.min()), float(finite.max())
    # Divided by the largest magnitude first: the range of scores near float64's limit
    # (1e308 - (-1e308)) would itself overflow.
    size = max(abs(low), abs(high)) or 1.0
    with np.errstate(invalid="ignore"):
        fraction = (values / size - low / size) / ((high / size - low / size) or 1.0)
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
    mask_caption = result.mask.caption()
    if mask_caption is not None and shown.kind != "vectors":
        lines.append(mask_caption)
    empty = empty_rows_text(result)
    if empty is not None:
        lines.append(empty)
    if params.projected and params.dropout > 0 and shown.command in ("weights", "context"):
        seed = params.dropout_seed if params.dropout_seed is not None else params.seed
        what = "weights shown" if shown.kind == "weights" else "context from weights"
        lines.append(
            f"dropout p={params.dropout:g} (seed {seed}): {what} after dropout, kept ones "
            f"×{dropout_scale(params.dropout):.6g}"
            if params.dropout < 1
            else f"dropout p=1: every weight dropped ({what} after dropout)"
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
    from rich.cells import cell_len
    from rich.console import Group
    from rich.padding import Padding
    from rich.text import Text

    shown = view(result, command)
    heads, _, n_cols = shown.matrices.shape
    row_labels = [shown_text(label) for label in shown.row_labels]
    col_labels = [shown_text(label) for label in shown.col_labels]
    label_width = min(max(cell_len(label) for label in row_labels), _MAX_LABEL)
    headers = np.array([min(cell_len(label), _MAX_HEADER) for label in col_labels])
    col_widths = np.maximum(headers, _number_widths(shown.matrices, precision)).tolist()
    columns = visible_columns(col_widths, width - label_width - 4)
    hidden = n_cols - sum(1 for c in columns if c is not None)
    # only the cells on screen are formatted: a long input has many columns
    cells = {
        c: [
            [format_number(v, precision) for v in shown.matrices[h, :, c].tolist()]
            for h in range(heads)
        ]
        for c in columns
        if c is not None
    }

    n_tokens = len(result.tokens)
    what = f"{n_tokens}×{n_cols}"
    if shown.query_index is not None:
        what = f"query '{shown_text(result.tokens[shown.query_index])}' (#{shown.query_index})"
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
        labels = (row_labels, col_labels)
        parts.append(_head_table(result, shown, labels, h, head_cells, col_widths, columns))
    caption = Text(_caption(result, shown, hidden), style="dim")
    parts.append(Padding(caption, (1, 0, 0, 1), expand=False))
    return Trimmed(Group(*parts))


def _number_widths(values: NDArray[np.floating[Any]], precision: int) -> NDArray[np.intp]:
    """The width of each column's widest number at `precision` decimals (-inf: 4)."""
    magnitude = np.abs(np.where(np.isfinite(values), values, 0.0)).astype(np.float64)
    large = magnitude >= LARGE_NUMBER  # shown as 1.2346e+38: measured one by one
    # Rounding can carry into a new digit (9.99996 -> 10.0000); 10**precision times a
    # large number could overflow, so they are left out of it.
    rounded = np.round(np.where(large, 0.0, magnitude), precision)
    digits = np.floor(np.log10(np.maximum(rounded, 1))) + 1
    negative = (values < 0) & (rounded > 0)  # -0.0000 prints as 0.0000
    widths = digits + negative + (precision + 1 if precision else 0)
    widths = np.where(np.isneginf(values), 4, widths)
    for index in zip(*np.nonzero(large), strict=True):
        widths[index] = len(format_number(float(values[index]), precision))
    column_widths: NDArray[np.intp] = widths.max(axis=(0, 1)).astype(np.intp)  # (H, n, m) -> (m,)
    return column_widths


def _head_table(
    result: AttentionResult,
    shown: View,
    labels: tuple[list[str], list[str]],
    head: int,
    cells: dict[int, list[str]],
    col_widths: list[int],
    columns: list[int | None],
) -> RenderableType:
    """The table of one head's matrix (the only one for vectors); `labels` are the row
    and column labels as shown."""
    from rich import box
    from rich.style import Style
    from rich.table import Table
    from rich.text import Text

    row_labels, col_labels = labels
    values = shown.matrices[head]  # (n, m)
    n_rows = values.shape[0]
    fractions = heat_fraction(shown)[head]
    masked = hidden_cells(result, shown, head)  # (n, m)
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
        header = Text(col_labels[c], no_wrap=True, overflow="ellipsis")
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
        label = Text(row_labels[i], no_wrap=True, overflow="ellipsis")
        if shown.query_index is not None:
            label.stylize(query_style)
        rendered: list[Text | str] = [label]
        for c in columns:
            if c is None:
                rendered.append(Text("…", style="dim"))
            elif masked[i, c]:
                shown_as = "0" if shown.kind == "weights" else cells[c][i]  # or -inf
                rendered.append(Text(shown_as, style="dim"))
            elif dropped is not None and dropped[i, c]:
                rendered.append(Text("0", style="dim italic"))
            else:
                style = heat_style(float(fractions[i, c]))
                if row_max is not None and float(row[c]) == row_max:
                    style = style + bold
                # padded to the column's width so the colour fills the cell evenly
                rendered.append(Text(cells[c][i].rjust(col_widths[c]), style=style))
        table.add_row(*rendered)
    return table


class Trimmed:
    """A renderable whose lines end without spaces: a table's padding, or the space
    where rich wrapped a line, would otherwise trail every line sent to a pipe or a file.
    A space with a background colour or a line through it stays (it shows). `widest`
    caps how wide it measures, which is how wide a picture of it gets."""

    def __init__(self, renderable: RenderableType, widest: int | None = None) -> None:
        self.renderable = renderable
        self.widest = widest

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.segment import Segment

        for line in Segment.split_lines(console.render(self.renderable, options)):
            yield from _without_trailing_space(line)
            yield Segment.line()

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        from rich.measure import Measurement

        measured = Measurement.get(console, options, self.renderable)
        return measured if self.widest is None else measured.clamp(max_width=self.widest)


def _without_trailing_space(line: list[Segment]) -> list[Segment]:
    from rich.segment import Segment

    line = list(line)
    while line:
        text, style, control = line[-1]
        visible = style is not None and (
            style.bgcolor is not None or style.reverse or style.underline or style.strike
        )
        if control or visible:
            break
        stripped = text.rstrip(" ")
        if stripped:
            line[-1] = Segment(stripped, style)
            break
        line.pop()
    return line
