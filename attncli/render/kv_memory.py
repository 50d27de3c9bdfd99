"""`attn kv-memory`'s output: the KV-cache estimate as a coloured table, Markdown, JSON
and CSV. Returns text or renderables; never prints.

Tables and Markdown show the GB, ratio and savings as the book's memory_estimator scripts
print them ("17.18 GB", "4.00x", "75.00%"); JSON and CSV give the exact bytes and the
full-precision numbers.
"""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Any

from ..kv_memory import KVMemory, Variant, gb, gb_text, percent_text, ratio_text

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.style import Style

COLUMNS = ("variant", "KV heads", "per token and layer", "bytes", "GB", "ratio", "saved")
# The same, as a table's headers: two lines, to fit 80 columns of a terminal.
_HEADERS = ("variant", "KV\nheads", "per token\nand layer", "bytes", "GB", "ratio", "saved")


def notes(report: KVMemory) -> list[str]:
    """What the numbers assume, one line each: the settings, the GQA groups (and the
    scripts' word for them), MLA's latent, the sliding-window layers, the units."""
    c = report.config
    dim = f"head_dim={report.head_dim}"
    if c.emb_dim % c.heads:
        dim = f"head_dim=⌈{c.emb_dim}/{c.heads}⌉={report.head_dim} (rounded up as the scripts)"
    size = report.bytes_per_element
    lines = [
        f"emb_dim={c.emb_dim} · {c.heads} heads of {dim} · {size} byte{_s(size)} per "
        f"element ({c.dtype.value})"
    ]
    if c.kv_groups is not None:
        group = c.heads // c.kv_groups
        lines.append(
            f"GQA: {c.kv_groups} key/value head{_s(c.kv_groups)}, each shared by {group} "
            f"query head{_s(group)} (scripts: --n_kv_groups {group})"
        )
    if c.latent_dim is not None:
        lines.append(
            f"MLA: one latent vector of {c.latent_dim} per token and layer instead of K and V"
        )
    window = report.effective_window
    if c.window is not None and window is not None:
        lines.append(f"SWA {report.layer_ratio}: {_sliding(report, c.window, window)}")
    lines.append("GB = 10⁹ bytes as the book's scripts print it; ratio and saved: against MHA")
    return lines


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def _sliding(report: KVMemory, window: int, effective: int) -> str:
    """Which layers keep what, in words."""
    beyond = f" (a window of {window} holds the whole context)" if window > effective else ""
    swa, full = report.swa_layers, report.full_layers
    keep = f"layer{_s(swa)} keep{'s' if swa == 1 else ''} the last {effective} tokens"
    if not full:
        return f"all {swa} {keep}{beyond}"
    if not swa:
        return f"no layer slides a window: all {full} keep the whole context"
    return f"{swa} {keep}, {full} the whole context{beyond}"


def _cells(report: KVMemory, variant: Variant) -> list[str]:
    """One row as tables and Markdown show it."""
    heads = "latent" if variant.kv_heads is None else str(variant.kv_heads)
    return [
        variant.name,
        heads,
        f"{variant.bytes_per_token:,} B",
        f"{variant.bytes:,}",
        gb_text(variant.bytes),
        ratio_text(report.ratio(variant)),
        percent_text(report.savings(variant)),
    ]


# Which columns a narrow terminal loses first (the variant and GB always stay).
_LEAST_NEEDED = (2, 3, 1, 6, 5)


def shown_columns(rows: list[list[str]], width: int) -> list[int]:
    """The columns of the table that fit in `width` characters, the least needed left
    out first; each column costs its widest cell or header line plus 3 (padding and a
    separator).

    >>> mha = ["MHA", "32", "16,384 B", "17,179,869,184", "17.18 GB", "1.00x", "0.00%"]
    >>> shown_columns([mha], 80), shown_columns([mha], 40)
    ([0, 1, 2, 3, 4, 5, 6], [0, 4, 5, 6])
    """
    widths = [
        max(max(len(line) for line in header.split("\n")), *(len(row[i]) for row in rows))
        for i, header in enumerate(_HEADERS)
    ]
    shown = list(range(len(_HEADERS)))
    for column in _LEAST_NEEDED:
        if sum(widths[i] + 3 for i in shown) - 1 <= width:
            break
        shown.remove(column)
    return shown


def to_table(report: KVMemory, width: int = 80) -> RenderableType:
    """The estimate as a rich table, each variant's size coloured on the heat map's
    scale (MHA brightest), with what it assumes below; fitted to `width` columns (a
    narrow terminal loses the per-token bytes, the exact bytes, the KV heads, then the
    savings and ratio, and the caption says so)."""
    from rich import box
    from rich.console import Group
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    from .table import Trimmed, heat_style

    c = report.config
    title = (
        f"attn kv-memory · {c.layers} layers × {c.context_length} tokens · batch {c.batch} "
        f"· {c.dtype.value}"
    )
    rows = [_cells(report, variant) for variant in report.variants]
    shown = shown_columns(rows, width)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold", pad_edge=True)
    for i in shown:
        table.add_column(
            _HEADERS[i], justify="left" if i == 0 else "right", vertical="bottom", no_wrap=True
        )
    # the coloured cells padded to their column's width, so the colour fills them evenly
    widths = {i: max(len(row[i]) for row in rows) for i in (3, 4)}
    for variant, cells in zip(report.variants, rows, strict=True):
        size = heat_style((variant.bytes / report.mha.bytes) ** 0.5)  # bytes and GB
        styles: dict[int, str | Style] = {0: "bold", 3: size, 4: size}
        table.add_row(
            *(Text(cells[i].rjust(widths.get(i, 0)), style=styles.get(i, "")) for i in shown)
        )
    lines = notes(report)
    if len(shown) < len(_HEADERS):
        left_out = ", ".join(COLUMNS[i] for i in range(len(COLUMNS)) if i not in shown)
        lines.append(f"not shown: {left_out}; -f json or -f csv shows everything")
    caption = Text("\n".join(lines), style="dim")
    return Trimmed(
        Group(
            Padding(Text(title, style="bold"), (0, 0, 0, 1), expand=False),
            table,
            Padding(caption, (1, 0, 0, 1), expand=False),
        )
    )


def to_markdown(report: KVMemory) -> str:
    """A GitHub-flavoured Markdown table of the estimate, its notes below."""
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "|---|" + "---:|" * (len(COLUMNS) - 1),
    ]
    lines += ["| " + " | ".join(_cells(report, v)) + " |" for v in report.variants]
    lines += ["", "<sub>" + "<br>".join(notes(report)) + "</sub>"]
    return "\n".join(lines) + "\n"


def settings(report: KVMemory) -> dict[str, Any]:
    """The configuration as given (the dtype by the scripts' name)."""
    c = report.config
    return {
        "emb_dim": c.emb_dim,
        "heads": c.heads,
        "layers": c.layers,
        "context_length": c.context_length,
        "batch": c.batch,
        "dtype": c.dtype.value,
        "kv_groups": c.kv_groups,
        "latent_dim": c.latent_dim,
        "window": c.window,
        "swa_ratio": report.layer_ratio,  # "A:B", or null without --window
    }


def variant_data(report: KVMemory, variant: Variant) -> dict[str, Any]:
    return {
        "name": variant.name,
        "attention": variant.attention,
        "sliding_window": variant.sliding_window,
        "kv_heads": variant.kv_heads,
        "bytes_per_token": variant.bytes_per_token,
        "bytes": variant.bytes,
        "gb": gb(variant.bytes),
        "ratio": report.ratio(variant),
        "savings": report.savings(variant),
    }


def to_json(report: KVMemory) -> str:
    """One strict JSON object: the configuration, what follows from it, and each
    variant's exact bytes (README "KV-cache memory"); a variant per line."""
    head = {
        "command": "kv-memory",
        "config": settings(report),
        "head_dim": report.head_dim,
        "bytes_per_element": report.bytes_per_element,
        "swa_layers": report.swa_layers,
        "full_layers": report.full_layers,
        "effective_window": report.effective_window,
    }
    variants = ",\n".join(
        "    " + json.dumps(variant_data(report, v), allow_nan=False) for v in report.variants
    )
    return (
        "{\n"
        + "".join(
            f"  {json.dumps(k)}: {json.dumps(v, allow_nan=False)},\n" for k, v in head.items()
        )
        + f'  "variants": [\n{variants}\n  ]\n}}\n'
    )


def to_csv(report: KVMemory) -> str:
    """A header and one row per variant, exact bytes and full precision."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    fields = list(variant_data(report, report.mha))
    writer.writerow(fields)
    for variant in report.variants:
        data = variant_data(report, variant)
        writer.writerow(_csv_cell(data[field]) for field in fields)
    return buffer.getvalue()


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)
