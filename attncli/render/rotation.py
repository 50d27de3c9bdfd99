"""`attn rope`'s output: the frequencies, angles, cos and sin of a RoPE table as tables
(rich), Markdown, JSON and CSV. Returns text or renderables; never prints.

Tables and Markdown show the frequencies and wavelengths to --precision significant
digits (they span orders of magnitude) and the angles, cos and sin to --precision
decimals, one column per pair of dimensions; JSON and CSV give every number at full
precision, JSON's cos and sin laid out per dimension as the layout applies them.
"""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Any

from ..rotation import RopeTable
from .view import format_number

if TYPE_CHECKING:
    from rich.console import RenderableType

TABLE_MAX_ROWS = 40  # as the attention tables: the first and last 20 of a long list


def significant(value: float, precision: int) -> str:
    """A frequency or wavelength at `precision` significant digits.

    >>> significant(0.0376060309, 4), significant(118142.1, 4), significant(1.0, 4)
    ('0.03761', '1.181e+05', '1')
    """
    return f"{value:.{max(precision, 1)}g}"


def settings(table: RopeTable) -> dict[str, Any]:
    """What made the table, as the attention commands' JSON names RoPE's settings."""
    rope = table.rope
    scaling = rope.scaling
    return {
        "head_dim": table.head_dim,
        "positions": len(table.positions),
        "position_offset": int(table.positions[0]),
        "dtype": table.dtype.value,
        "rope": {
            "theta": rope.theta,
            "layout": rope.layout,
            "scaling": None if scaling is None else {"type": "llama3", **scaling._asdict()},
            "partial": rope.partial,
        },
    }


def layout_text(table: RopeTable) -> str:
    """How cos and sin are laid out over the dimensions, in words."""
    half = table.pairs
    if table.rope.layout == "interleaved":
        return (
            "interleaved: pair k turns dims 2k and 2k+1; cos and sin hold each angle twice, "
            "pair by pair [a0, a0, a1, a1, ...] (Meta's original)"
        )
    return (
        f"split: pair k turns dims k and k+{half}; cos and sin hold the angles twice, "
        "[a, a] concatenated (the book's and Hugging Face's)"
    )


def notes(table: RopeTable) -> list[str]:
    """What the numbers assume, a line each."""
    rope = table.rope
    lines = [
        f"head_dim={table.head_dim} · rotary_dim={table.rotary_dim} · {rope.describe()} · "
        f"{table.dtype.value}",
        layout_text(table),
    ]
    if table.rotary_dim < table.head_dim:
        lines.append(f"dims {table.rotary_dim}..{table.head_dim - 1} are not rotated")
    scaling = rope.scaling
    if scaling is not None:
        high = scaling.original_context / scaling.high_freq_factor
        low = scaling.original_context / scaling.low_freq_factor
        lines.append(
            f"band by the unscaled wavelength: kept below {high:g} tokens, divided by "
            f"{scaling.factor:g} above {low:g}, smoothed between"
        )
    if table.dtype.value == "float64":
        lines.append("float64 (the book computes inv_freq in float32: --dtype float32)")
    return lines


def _shown_rows(count: int) -> list[int]:
    """The rows a table shows of `count`: all, or the first and last 20."""
    if count <= TABLE_MAX_ROWS:
        return list(range(count))
    half = TABLE_MAX_ROWS // 2
    return [*range(half), *range(count - half, count)]


def _frequency_cells(table: RopeTable, precision: int) -> list[list[str]]:
    """One row a pair: k, its dims, inv_freq, wavelength (and band)."""
    bands = table.bands
    rows = []
    for k, (freq, wave) in enumerate(
        zip(table.inv_freq.tolist(), table.wavelength.tolist(), strict=True)
    ):
        a, b = table.dims(k)
        row = [str(k), f"{a}, {b}", significant(freq, precision), significant(wave, precision)]
        rows.append(row + ([bands[k]] if bands is not None else []))
    return rows


def _frequency_headers(table: RopeTable) -> list[str]:
    return ["k", "dims", "inv_freq", "wavelength"] + (["band"] if table.bands else [])


def matrices(table: RopeTable) -> list[tuple[str, Any]]:
    """The per-pair tables a table shows, (title, (n, r/2) values)."""
    import numpy as np

    return [
        ("angles p·inv_freq_k (radians)", table.angles),
        ("cos", np.cos(table.angles)),
        ("sin", np.sin(table.angles)),
    ]


def to_table(table: RopeTable, precision: int = 4, width: int = 80) -> RenderableType:
    """The frequencies, then the angles, cos and sin (a row a position, a column a pair),
    cos and sin coloured on the heat map's scale (-1 dark, 1 bright); long lists keep
    their first and last 20 rows, wide ones their first and last columns."""
    from rich import box
    from rich.console import Group
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    from .table import Trimmed, heat_style, visible_columns

    n = len(table.positions)
    first, last = int(table.positions[0]), int(table.positions[-1])
    span = f"position {first}" if n == 1 else f"positions {first}–{last}"
    title = f"attn rope · head_dim {table.head_dim} · {span}"
    parts: list[RenderableType] = [Padding(Text(title, style="bold"), (0, 0, 0, 1), expand=False)]

    def new_table() -> Table:
        return Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold", pad_edge=True)

    frequencies = new_table()
    for i, header in enumerate(_frequency_headers(table)):
        frequencies.add_column(header, justify="left" if i > 3 else "right", no_wrap=True)
    cells = _frequency_cells(table, precision)
    rows = _shown_rows(len(cells))
    for i, k in enumerate(rows):
        if i and k != rows[i - 1] + 1:
            gap = Text(f"⋮ {k - rows[i - 1] - 1} more", style="dim")
            frequencies.add_row(gap, *("" for _ in cells[0][1:]))
        frequencies.add_row(*cells[k])
    parts.append(frequencies)

    position_rows = _shown_rows(n)
    labels = [str(int(table.positions[i])) for i in position_rows]
    label_width = max(len(label) for label in [*labels, "p"])
    hidden_columns = 0
    for name, values in matrices(table):
        texts = {
            c: [format_number(float(values[i, c]), precision) for i in position_rows]
            for c in range(table.pairs)
        }
        headers = [f"k={c}" for c in range(table.pairs)]
        widths = [max(len(headers[c]), *(len(t) for t in texts[c])) for c in range(table.pairs)]
        columns = visible_columns(widths, width - label_width - 4)
        hidden_columns = table.pairs - sum(1 for c in columns if c is not None)
        grid = new_table()
        grid.add_column("p", style="bold", justify="right", no_wrap=True)
        for c in columns:
            if c is None:
                grid.add_column("…", justify="center", no_wrap=True)
            else:
                grid.add_column(headers[c], justify="right", no_wrap=True, width=widths[c])
        for i, row in enumerate(position_rows):
            if i and row != position_rows[i - 1] + 1:
                gap = Text(f"⋮ {row - position_rows[i - 1] - 1} more", style="dim")
                grid.add_row(gap, *("" for _ in columns))
            shown: list[Text | str] = [labels[i]]
            for c in columns:
                if c is None:
                    shown.append(Text("…", style="dim"))
                    continue
                text = texts[c][i].rjust(widths[c])
                # cos and sin on the heat map's scale, -1 dark to 1 bright; angles plain
                coloured = not name.startswith("angles")
                style = heat_style((float(values[row, c]) + 1) / 2) if coloured else ""
                shown.append(Text(text, style=style))
            grid.add_row(*shown)
        parts += [Text(""), Padding(Text(name, style="bold"), (0, 0, 0, 1), expand=False), grid]

    lines = notes(table)
    left_out = []
    if len(cells) > TABLE_MAX_ROWS:
        left_out.append(f"{len(cells) - TABLE_MAX_ROWS} pairs")
    if n > TABLE_MAX_ROWS:
        left_out.append(f"{n - TABLE_MAX_ROWS} positions")
    if hidden_columns:
        left_out.append(f"{hidden_columns} columns")
    if left_out:
        lines.append(f"{' and '.join(left_out)} not shown; -f csv or -f json shows all")
    parts.append(Padding(Text("\n".join(lines), style="dim"), (1, 0, 0, 1), expand=False))
    return Trimmed(Group(*parts))


def to_markdown(table: RopeTable, precision: int = 4) -> str:
    """GitHub-flavoured Markdown: the frequencies, then the angles, cos and sin, every
    row; the notes below."""
    headers = _frequency_headers(table)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---:|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in _frequency_cells(table, precision)]
    for name, values in matrices(table):
        lines += ["", f"**{name}**", ""]
        lines.append("| p | " + " | ".join(f"k={c}" for c in range(table.pairs)) + " |")
        lines.append("|" + "---:|" * (table.pairs + 1))
        for i, p in enumerate(table.positions.tolist()):
            row = [format_number(v, precision) for v in values[i].tolist()]
            lines.append(f"| {p} | " + " | ".join(row) + " |")
    lines += ["", "<sub>" + "<br>".join(notes(table)) + "</sub>"]
    return "\n".join(lines) + "\n"


def to_json(table: RopeTable) -> str:
    """One strict JSON object (README "The rotation itself"): the settings, the
    frequencies, and a row a position of the angles (per pair) and of cos and sin (per
    dimension, as the layout applies them); each row on a line of its own."""
    head: dict[str, Any] = {
        "command": "rope",
        "params": settings(table),
        "head_dim": table.head_dim,
        "rotary_dim": table.rotary_dim,
        "layout": table.rope.layout,
        "cos_sin_layout": layout_text(table),
        "positions": table.positions.tolist(),
        "inv_freq": table.inv_freq.tolist(),
        "inv_freq_unscaled": table.inv_freq_unscaled.tolist() if table.bands else None,
        "wavelength": table.wavelength.tolist(),
        "band": table.bands,
    }
    blocks = {"angles": table.angles, "cos": table.cos, "sin": table.sin}
    text = "{\n" + "".join(
        f"  {json.dumps(k)}: {json.dumps(v, allow_nan=False)},\n" for k, v in head.items()
    )
    last = list(blocks)[-1]
    for name, values in blocks.items():
        rows = ",\n".join("    " + json.dumps(row, allow_nan=False) for row in values.tolist())
        text += f'  "{name}": [\n{rows}\n  ]' + ("\n" if name == last else ",\n")
    return text + "}\n"


def to_csv(table: RopeTable) -> str:
    """A header and a row per position and pair, full precision."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    bands = table.bands
    writer.writerow(
        ["position", "k", "dim_a", "dim_b", "inv_freq", "wavelength", "band", "angle", "cos", "sin"]
    )
    inv_freq, wavelength = table.inv_freq.tolist(), table.wavelength.tolist()
    angles = table.angles.tolist()
    import numpy as np

    cos, sin = np.cos(table.angles).tolist(), np.sin(table.angles).tolist()
    for i, p in enumerate(table.positions.tolist()):
        for k in range(table.pairs):
            a, b = table.dims(k)
            writer.writerow(
                [
                    p,
                    k,
                    a,
                    b,
                    repr(inv_freq[k]),
                    repr(wavelength[k]),
                    bands[k] if bands is not None else "",
                    repr(angles[i][k]),
                    repr(cos[i][k]),
                    repr(sin[i][k]),
                ]
            )
    return buffer.getvalue()
