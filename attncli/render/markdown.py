"""Markdown: GitHub-flavoured tables to paste into a post, at --precision."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import shown_text
from .view import empty_rows_text, format_number, masked_cells, settings_line, view

if TYPE_CHECKING:
    from ..attention import AttentionResult


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
            row = shown.matrices[h, i]
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
    mask = result.mask
    masked_by = "masked (causal)"
    if shown.kind != "vectors" and (mask.window is not None or mask.source is not None):
        notes.append(shown_text(mask.caption() or ""))  # beyond "causal": say what masks
        masked_by = "masked"
    empty = empty_rows_text(result)
    if empty is not None:
        notes.append(empty)
    if masked is not None:
        notes.append(f"*italic*: {masked_by} or dropped (dropout); **bold**: each row's largest")
    elif shown.kind != "vectors":
        notes.append("**bold**: each row's largest")
    lines.append("<sub>" + " · ".join(_md_plain(note) for note in notes) + "</sub>")
    return "\n".join(lines) + "\n"


def _md_plain(text: str) -> str:
    return text.replace("|", "\\|")
