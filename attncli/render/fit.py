"""Tables of numbers laid out for the width they are drawn at: each number whole, or
left out visibly ("…"), never cut. Returns renderables; never prints.

The walkthrough of `attn explain` is drawn at the terminal's width, in a file's 100
columns or in a picture's 120, inside panels: only at drawing time is the width known,
so each table here is a Fitted, built then. A token column stays (a long token is cut
with "…"); number columns are elided in the middle; long vectors and lines of
arithmetic wrap between their entries, which are never wider than the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .table import visible_columns

TOKEN_WIDTH = (9, 20)  # the token column's narrowest and widest


class Fitted:
    """A renderable built for the width it is drawn at (inside a panel: the panel's)."""

    def __init__(self, build: Callable[[int], RenderableType]) -> None:
        self.build = build

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.build(options.max_width)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self.build(options.max_width))


def panel(title: str, detail: str, body: RenderableType) -> Fitted:
    """A panel whose title ends with `detail` where the width allows: a number in a
    title is shown whole or not at all (the panel's body shows it too)."""

    def build(width: int) -> Panel:
        full = title + detail
        fits = cell_len(full) + 6 <= width  # "╭─ " title " ─╮"
        text = Text(full if fits else title, overflow="ellipsis")
        return Panel(body, title=text, title_align="left", box=box.ROUNDED)

    return Fitted(build)


def grid(
    rows: Sequence[Sequence[str]],
    headers: Sequence[str] | None = None,
    labels: Sequence[Text] | None = None,
) -> Fitted:
    """Numbers in columns: a token column if `labels`, then the columns that fit, the
    middle ones elided as "…". With headers a ruled table (a long header wraps before a
    column is elided); without, a bare grid. A row of "" or "⋮" marks a gap."""
    return Fitted(lambda width: _grid(width, rows, headers, labels))


def _grid(
    width: int,
    rows: Sequence[Sequence[str]],
    headers: Sequence[str] | None,
    labels: Sequence[Text] | None,
) -> Table:
    n_cols = len(rows[0])
    widths = [max(cell_len(row[c]) for row in rows) for c in range(n_cols)]
    full = wrapped = widths
    if headers is not None:
        full = [max(w, cell_len(h)) for w, h in zip(widths, headers, strict=True)]
        wrapped = [max(w, *map(cell_len, h.split())) for w, h in zip(widths, headers, strict=True)]
    label_width = 0
    if labels:
        # narrow enough for the first and the last column, and "…" between them
        least = wrapped[0] + wrapped[-1] + 10 if n_cols > 2 else sum(w + 3 for w in wrapped)
        label_width = _token_width(labels, width, room=width - 2 - least)
    if headers is not None:
        # SIMPLE_HEAD without edges: the label column costs its width + 2, others + 3
        # each, less 1 in all without a label column
        available = width - label_width - 2 if labels else width + 1
        widths = full if sum(w + 3 for w in full) <= available else wrapped
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold")
    else:
        available = width + 2  # two spaces between columns: width + 3 each is enough
        table = Table(box=None, show_header=False, pad_edge=False)
    columns = visible_columns(widths, available)
    if labels:
        table.add_column("token", width=label_width, no_wrap=True, overflow="ellipsis")
    for c in columns:
        header = "…" if c is None else headers[c] if headers is not None else ""
        table.add_column(header, justify="right", width=1 if c is None else widths[c])
    for i, row in enumerate(rows):
        gap = all(cell in ("", "⋮") for cell in row)
        cells = [Text(row[0] if gap else "…") if c is None else Text(row[c]) for c in columns]
        table.add_row(*(labels[i : i + 1] if labels else ()), *cells)
    return table


def vector_table(
    labels: Sequence[Text], rows: Sequence[Sequence[str]], headers: Sequence[str]
) -> Fitted:
    """A token and vectors ("[0.1, -0.2]") on each row: each vector on one line where
    they all fit, else wrapped between its entries."""
    natural = [max(cell_len(h), *(cell_len(row[c]) for row in rows)) for c, h in enumerate(headers)]
    longest = [_longest_word(row[c] for row in rows) for c in range(len(headers))]

    def build(width: int) -> Table:
        # SIMPLE_HEAD without edges: the label column costs its width + 2, others + 3
        overhead = 2 + 3 * len(headers)
        label_width = _token_width(labels, width, room=width - overhead - sum(longest))
        room = width - label_width - overhead
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold")
        table.add_column("token", width=label_width, no_wrap=True, overflow="ellipsis")
        for c, header in enumerate(headers):
            share = room // (len(headers) - c)  # an even share of what is left
            column_width = min(natural[c], max(longest[c], share))
            table.add_column(header, width=column_width)
            room -= column_width
        for label, row in zip(labels, rows, strict=True):
            table.add_row(label, *map(Text, row))
        return table

    return Fitted(build)


def line_table(labels: Sequence[Text], lines: Sequence[str]) -> Fitted:
    """A token and a line of arithmetic on each row; a long line wraps between terms."""
    longest = _longest_word(lines)

    def build(width: int) -> Table:
        label_width = _token_width(labels, width, room=width - 2 - longest)
        table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 0, 0))
        table.add_column(width=label_width, no_wrap=True, overflow="ellipsis")
        table.add_column(max_width=max(longest, width - label_width - 2))
        for label, line in zip(labels, lines, strict=True):
            table.add_row(label, Text(line))
        return table

    return Fitted(build)


def _longest_word(texts: Iterable[str]) -> int:
    """The widest run without a space: no column is made narrower, so a number in it
    stays whole."""
    return max((cell_len(word) for text in texts for word in text.split()), default=0)


def _token_width(labels: Sequence[Text], width: int, room: int) -> int:
    """The token column's width: its longest label within TOKEN_WIDTH, at most a third
    of a narrow panel and at most `room` (a longer token is cut with "…")."""
    narrowest, widest = TOKEN_WIDTH
    longest = max(cell_len(label.plain) for label in labels)
    return max(4, min(max(longest, narrowest), widest, max(6, width // 3), room))
