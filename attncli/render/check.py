"""`attn check`'s report: as rich renderables (each stage given, matching or not; the
reader's numbers and the right ones row by row where they differ, the differing ones
marked, in colour and with a * that needs none; then what reproduces them), and as one
strict JSON object. Returns renderables and text; never prints. User text goes to rich
as escaped Text, never as markup; rich is imported only when a report is drawn.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ..checking import Diagnosis, Report, StageCheck
from ..errors import shown_text
from ..mistakes import Mistake
from .table import Trimmed, visible_columns
from .view import format_number, settings_text

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.text import Text

# Rows of one block shown (pairs of lines where they differ); the caption counts the rest.
MAX_ROWS = 12
MARK = "*"
_DIFFERS = "bold red"
_MATCHES = "green"


def render(report: Report, precision: int = 4, width: int = 80) -> RenderableType:
    """The whole report, fitted to `width` columns."""
    from rich.console import Group
    from rich.padding import Padding
    from rich.text import Text

    p = report.prepared
    theirs = report.theirs
    what = f"{len(p.embeddings.tokens)} tokens"
    if report.query is not None:
        what = f"query {shown_text(p.embeddings.tokens[report.query])!r} (#{report.query})"
    title = Text(
        f"attn check · {shown_text(theirs.source)} ({theirs.form}) · {p.params.mode.value} · "
        f"{what}",
        style="bold",
    )
    parts: list[RenderableType] = [title]
    for c in report.checks:
        parts.append(Text(""))
        parts.append(_headline(report, c))
        if not c.matches:
            parts.extend(_blocks(report, c, precision, width))
    parts.append(Text(""))
    parts.extend(_verdict(report))
    lines = [settings_text(p)]
    mask = p.mask.caption()
    if mask is not None:
        lines.append(mask)
    if not all(c.matches for c in report.checks):
        lines.append(f"{MARK} yours differs from the right number by more than the tolerance")
    parts.append(Padding(Text("\n".join(lines), style="dim"), (1, 0, 0, 0), expand=False))
    return Trimmed(Group(*parts))


def _hanging(prefix: Text | str, body: RenderableType) -> RenderableType:
    """`prefix`, then `body` wrapped with its later lines indented under its first."""
    from rich.table import Table

    grid = Table.grid()
    grid.add_column(no_wrap=True)
    grid.add_column()
    grid.add_row(prefix, body)
    return grid


def _headline(report: Report, c: StageCheck) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    stage = c.stage
    verb = ("matches" if c.matches else "differs") if stage == "context" else None
    verb = verb or ("match" if c.matches else "differ")
    form = f" ({c.form.name})" if c.form.name not in ("joined", "matrix", "output") else ""
    batch = f" (item 0 of a batch of {c.batch})" if c.batch else ""
    tolerance = (
        f"tolerance {gap_text(float(np.max(c.tolerance)))}, as yours are {_precision_words(c)}"
    )
    text = Text()
    text.append(f"{stage}{form}{batch} {verb}", style="bold")
    if c.matches:
        text.append(f": largest difference {gap_text(c.max_abs_diff)}; {tolerance}")
        return _hanging(Text("✓ ", style=_MATCHES), text)
    worst = c.worst
    assert worst is not None
    count = int(c.differs.sum())
    text.append(
        f" in {count} of {c.theirs.size} numbers; most at {where_text(report, c, worst)}: "
        f"yours {number_text(float(c.theirs[worst]))}, right "
        f"{number_text(float(c.right[worst]))}"
    )
    notes = Text(tolerance, style="dim")
    if c.follows is True:
        notes.append("; this follows from your earlier stages", style="dim")
    elif c.follows is False:
        notes.append("; more than your earlier stages explain", style="dim")
    return _hanging(Text("✗ ", style=_DIFFERS), Group(text, notes))


def _precision_words(c: StageCheck) -> str:
    precision = c.given.precision
    if precision.full:
        return f"{precision.kind} numbers"
    if precision.kind == "whole":
        return "whole numbers"
    return f"given to {precision.describe()}"


def _labels(report: Report, c: StageCheck, axis: str, size: int) -> list[str]:
    p = report.prepared
    if axis == "dim":
        return [f"d{i + 1}" for i in range(size)]
    if axis in ("head", "kv_head"):
        return [f"head {i}" for i in range(size)]
    keys = axis == "key" or (axis == "token" and c.stage in ("keys", "values"))
    tokens = p.key_tokens if keys else p.embeddings.tokens
    return [shown_text(t) for t in tokens[:size]]


def _blocks(report: Report, c: StageCheck, precision: int, width: int) -> list[RenderableType]:
    """The reader's numbers beside the right ones: one table per head that differs."""
    from rich.text import Text

    axes = c.form.axes
    theirs, right, differs = c.theirs, c.right, c.differs
    if theirs.ndim == 1:  # one --query row
        row = report.prepared.embeddings.tokens[report.query or 0]
        theirs, right, differs = theirs[np.newaxis], right[np.newaxis], differs[np.newaxis]
        axes = ("row", *axes)
        rows = [shown_text(row)]
    else:
        rows = []
    blocks: list[RenderableType] = []
    if theirs.ndim == 3:
        for h in range(theirs.shape[0]):
            name = "key/value head" if axes[0] == "kv_head" else "head"
            if not differs[h].any():
                blocks.append(Text(f"  {name} {h}: matches", style="dim"))
                continue
            blocks.append(Text(f"  {name} {h}:"))
            row_labels = _labels(report, c, axes[1], theirs.shape[1])
            col_labels = _labels(report, c, axes[2], theirs.shape[2])
            blocks.append(
                _table(theirs[h], right[h], differs[h], row_labels, col_labels, precision, width)
            )
        return blocks
    row_labels = rows or _labels(report, c, axes[0], theirs.shape[0])
    col_labels = _labels(report, c, axes[1], theirs.shape[1])
    return [_table(theirs, right, differs, row_labels, col_labels, precision, width)]


def _table(
    theirs: NDArray[np.float64],
    right: NDArray[np.float64],
    differs: NDArray[np.bool_],
    row_labels: list[str],
    col_labels: list[str],
    precision: int,
    width: int,
) -> RenderableType:
    """Rows that differ as two lines, yours and the right numbers (yours that differ
    marked); rows that match as one line, both."""
    from rich import box
    from rich.cells import cell_len
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    yours = [[_cell(v, precision) for v in row] for row in theirs.tolist()]
    rights = [[_cell(v, precision) for v in row] for row in right.tolist()]
    widths = [
        max(
            min(cell_len(col_labels[j]), 12),
            *(len(yours[i][j]) + 1 for i in range(len(yours))),
            *(len(rights[i][j]) + 1 for i in range(len(rights))),
        )
        for j in range(len(col_labels))
    ]
    label_width = min(max(cell_len(label) for label in row_labels), 20)
    columns = visible_columns(widths, width - label_width - 12)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold", pad_edge=True)
    table.add_column("", style="bold", no_wrap=True, overflow="ellipsis", max_width=20)
    table.add_column("", no_wrap=True)
    for j in columns:
        if j is None:
            table.add_column("…", justify="center", no_wrap=True)
        else:
            header = Text(col_labels[j], no_wrap=True, overflow="ellipsis")
            table.add_column(header, justify="right", no_wrap=True, width=widths[j])
    differing_rows = [i for i in range(len(row_labels)) if differs[i].any()]
    shown = set(range(len(row_labels))) if len(row_labels) <= MAX_ROWS else set()
    if not shown:
        shown = set(differing_rows[:MAX_ROWS])
    for i in range(len(row_labels)):
        if i not in shown:
            continue
        label = Text(row_labels[i], no_wrap=True, overflow="ellipsis")
        if not differs[i].any():
            table.add_row(label, Text("both", style="dim"), *_line(yours[i], None, columns))
            continue
        table.add_row(label, "yours", *_line(yours[i], differs[i], columns))
        table.add_row("", Text("right", style="dim"), *_line(rights[i], None, columns, "dim"))
    parts: list[RenderableType] = [table]
    left_out = len(row_labels) - len(shown)
    hidden = len(col_labels) - sum(1 for j in columns if j is not None)
    notes = [f"{hidden} columns"] if hidden else []
    if left_out:
        more = len(differing_rows) - len(shown & set(differing_rows))
        notes.append(f"{left_out} rows ({more} of them differing)")
    if notes:
        parts.append(Text(f"  {' and '.join(notes)} not shown; -f json shows all", style="dim"))
    return Group(*parts)


def _cell(value: float, precision: int) -> str:
    return "nan" if value != value else format_number(value, precision)


def _line(
    cells: list[str], differs: NDArray[np.bool_] | None, columns: list[int | None], style: str = ""
) -> list[Text]:
    from rich.text import Text

    shown: list[Text] = []
    for j in columns:
        if j is None:
            shown.append(Text("…", style="dim"))
        elif differs is not None and differs[j]:
            shown.append(Text(cells[j] + MARK, style=_DIFFERS))
        else:
            shown.append(Text(cells[j] + " ", style=style))
    return shown


def _verdict(report: Report) -> list[RenderableType]:
    """What the report comes to: right; or where to look, and what reproduces it."""
    from rich.text import Text

    first = report.first
    if first is None:
        return [Text("Your numbers are right.", style="bold")]
    if report.right_after_all:
        lines: list[RenderableType] = [Text("Your numbers are right.", style="bold")]
        for d in report.diagnoses:
            lines.extend(_diagnosis(d))
        return lines
    later = [c for c in report.checks if not c.matches and c is not first]
    follows = ""
    if later and all(c.follows for c in later):
        follows = "; the later stages follow from it"
    lines = [
        Text(
            f"The first stage that differs is {first.stage}: look there first{follows}.",
            style="bold",
        )
    ]
    full = [d for d in report.diagnoses if not d.misses]
    if full:
        lines.append(Text("What reproduces your numbers:"))
        for d in full:
            lines.extend(_diagnosis(d))
        return lines
    if report.diagnoses:
        missed = sorted({s for d in report.diagnoses for s in d.misses}, key=_order)
        lines.append(
            Text(
                f"Nothing in attn's catalogue reproduces all your numbers; these reproduce your "
                f"{first.stage}, not your {', '.join(missed)}:"
            )
        )
        for d in report.diagnoses:
            lines.extend(_diagnosis(d))
        return lines
    lines.append(
        Text(
            f"None of the {report.tried} mistakes attn knows for these settings reproduces "
            "your numbers. Check the settings first: --mode, --seed, --init, --d-out, --heads, "
            "--qkv-bias and --dropout must be those your code used."
        )
    )
    return lines


def _order(stage: str) -> int:
    from ..inputs.theirs import STAGES

    return STAGES.index(stage)


def _diagnosis(d: Diagnosis) -> list[RenderableType]:
    from rich.text import Text

    lines: list[RenderableType] = []
    together = len(d.mistakes) > 1
    for k, mistake in enumerate(d.mistakes):
        body = Text()
        if together:
            body.append("two mistakes together: " if k == 0 else "and ")
        body.append(mistake.name, style="bold")
        body.append(f"\nfix: {mistake.fix} (book {mistake.book})")
        lines.append(_hanging("  • " if k == 0 else "    ", body))
    return lines


# ---------------------------------------------------------------- describing


def cell_labels(report: Report, c: StageCheck, index: tuple[int, ...]) -> dict[str, Any]:
    """Where a number sits, by its axes: head, query, key, token (index and text), dim."""
    p = report.prepared
    labels: dict[str, Any] = {}
    for axis, i in zip(c.form.axes, index, strict=True):
        if axis in ("head", "kv_head"):
            labels[axis] = i
        elif axis == "dim":
            labels["dim"] = f"d{i + 1}"
        else:
            keys = axis == "key" or (axis == "token" and c.stage in ("keys", "values"))
            tokens = p.key_tokens if keys else p.embeddings.tokens
            labels[axis] = {"index": i, "token": tokens[i]}
    if report.query is not None:
        labels["query"] = {"index": report.query, "token": p.embeddings.tokens[report.query]}
    return labels


def where_text(report: Report, c: StageCheck, index: tuple[int, ...]) -> str:
    """Where a number sits, in words: head 1, 'journey' → 'Your'; 'journey', d2."""
    labels = cell_labels(report, c, index)
    parts = []
    for key in ("head", "kv_head"):
        if key in labels:
            parts.append(f"{'key/value ' if key == 'kv_head' else ''}head {labels[key]}")
    row = labels.get("query") or labels.get("token")
    if row is not None and "key" in labels:
        parts.append(f"{shown_text(row['token'])!r} → {shown_text(labels['key']['token'])!r}")
    elif row is not None:
        parts.append(repr(shown_text(row["token"])))
    if "key" in labels and row is None:
        parts.append(f"key {shown_text(labels['key']['token'])!r}")
    if "dim" in labels:
        parts.append(labels["dim"])
    return ", ".join(parts)


def number_text(value: float, digits: int = 4) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "-inf" if value < 0 else "inf"
    return f"{value:.{digits}f}" if abs(value) < 1e6 else f"{value:.{digits}e}"


def gap_text(value: float | None) -> str:
    """A difference or tolerance, short: 0.4513, 3.2e-05."""
    if value is None:
        return "none"
    if value == 0:
        return "0"
    return f"{value:.4f}" if 1e-3 <= value < 1e6 else f"{value:.1e}"


# ---------------------------------------------------------------- JSON


def _json_value(value: float) -> float | str:
    """A number for strict JSON: -inf, inf and NaN as the strings "-inf", "inf", "nan"."""
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("-inf" if value < 0 else "inf")


def _json_array(array: NDArray[Any]) -> Any:
    values = np.asarray(array, dtype=np.float64)
    if np.isfinite(values).all():
        return values.tolist()
    return np.vectorize(_json_value, otypes=[object])(values).tolist()


def mistake_json(mistake: Mistake) -> dict[str, Any]:
    return {
        "code": mistake.code,
        "name": mistake.name,
        "stage": mistake.stage,
        "fix": mistake.fix,
        "book": mistake.book,
        "benign": mistake.benign,
    }


def to_json(report: Report) -> str:
    """The report as one strict JSON object (README "Why don't my numbers match?")."""
    p = report.prepared
    stages = []
    for c in report.checks:
        worst = c.worst
        diff = c.max_abs_diff
        stages.append(
            {
                "stage": c.stage,
                "form": c.form.name,
                "shape": list(c.theirs.shape),
                "batch": c.batch,
                "precision": c.given.precision.describe(),
                "tolerance": float(np.max(c.tolerance)),
                "matches": c.matches,
                "numbers": int(c.theirs.size),
                "differing": int(c.differs.sum()),
                "nonfinite_differing": c.nonfinite,
                "max_abs_diff": diff,
                "where": None if worst is None else cell_labels(report, c, worst),
                "theirs_there": None if worst is None else _json_value(float(c.theirs[worst])),
                "right_there": None if worst is None else _json_value(float(c.right[worst])),
                "follows": c.follows,
                "theirs": _json_array(c.theirs),
                "right": _json_array(c.right),
            }
        )
    first = report.first
    query = None
    if report.query is not None:
        query = {"index": report.query, "token": p.embeddings.tokens[report.query]}
    document = {
        "command": "check",
        "status": report.status,
        "theirs": {"source": report.theirs.source, "form": report.theirs.form},
        "mode": p.params.mode.value,
        "tokens": list(p.embeddings.tokens),
        **({"key_tokens": list(p.key_tokens)} if p.kv is not None else {}),
        "query": query,
        "first_difference": None if first is None else first.stage,
        "stages": stages,
        "diagnoses": [
            {
                "mistakes": [mistake_json(m) for m in d.mistakes],
                "benign": d.benign,
                "reproduces": list(d.reproduces),
                "misses": list(d.misses),
            }
            for d in report.diagnoses
        ],
        "mistakes_tried": report.tried,
        "params": p.settings(),
    }
    return _dumps(document) + "\n"


def _dumps(value: Any, level: int = 0) -> str:
    """Strict JSON, indented, each list of numbers or strings on one line (a matrix a
    row a line, as attn's other JSON writes it)."""
    pad, inner = "  " * level, "  " * (level + 1)
    if isinstance(value, dict) and value:
        items = (f"{inner}{json.dumps(k)}: {_dumps(v, level + 1)}" for k, v in value.items())
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and any(isinstance(v, (list, dict)) for v in value):
        return "[\n" + ",\n".join(inner + _dumps(v, level + 1) for v in value) + f"\n{pad}]"
    return json.dumps(value, allow_nan=False)
