"""`attn explain` for people: one rich panel per step. Returns renderables; never prints.

Long inputs stay readable: beyond MAX_ROWS tokens the middle rows are elided, vectors
longer than MAX_DIMS show their ends, and dot products with more than MAX_TERMS terms
are summed without writing every product out. `-f json` has everything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .explain import HeadSteps, Walkthrough
from .modes import Layout, Mode
from .render import settings_line
from .rng import dropout_scale

MAX_ROWS = 12  # tokens listed in full; more are elided in the middle
MAX_DIMS = 8  # vector entries shown in full
MAX_TERMS = 6  # products written out in a dot product


def render(walk: Walkthrough, precision: int = 4) -> RenderableType:
    """The whole walkthrough as a sequence of numbered panels."""
    result = walk.result
    fmt = _formatter(precision)
    params = result.params
    projected = params.projected
    T, d_in = result.embeddings.matrix.shape
    parts: list[RenderableType] = [
        Text(
            f"attn explain · {params.mode.value} · query {walk.token!r} (#{walk.query_index}) "
            f"· {T} tokens, d_in={d_in}",
            style="bold",
        )
    ]
    number = 0

    def panel(title: str, *body: RenderableType) -> None:
        nonlocal number
        number += 1
        parts.append(
            Panel(Group(*body), title=f"{number}. {title}", title_align="left", box=box.ROUNDED)
        )

    x = result.embeddings.matrix
    panel(
        "The inputs",
        Text(
            f"Each token is a vector of d_in = {d_in} numbers (book 3.3). The query is token "
            f"#{walk.query_index}, {walk.token!r}: x = {fmt.vector(x[walk.query_index])}"
        ),
        _matrix_table(result.tokens, x, fmt, highlight=walk.query_index),
    )

    weights = result.weights
    if weights is not None:
        D = weights.d_out
        if weights.file:
            origin = f"read from {weights.file}"
        else:
            drawn = (
                f"nn.Linear({d_in}, {D})"
                if weights.layout is Layout.LINEAR
                else f"torch.rand({d_in}, {D})"
            )
            origin = f"three {drawn} after torch.manual_seed({params.seed})"
        if weights.layout is Layout.LINEAR:
            how = f"each stored as nn.Linear's ({D}, {d_in}) weight and applied as X @ W.T"
        else:
            how = f"each ({d_in}, {D}), applied as X @ W"
        tables: list[RenderableType] = []
        for name in ("W_query", "W_key", "W_value"):
            matrix = getattr(weights, name)
            written = matrix.T if weights.layout is Layout.LINEAR else matrix
            tables.append(Text(name, style="bold"))
            tables.append(_plain_table(written, fmt))
            bias = getattr(weights, "b_" + name[2:])
            if bias is not None:
                tables.append(Text(f"b_{name[2:]} = {fmt.vector(bias)}"))
        panel(
            "The trainable weights",
            Text(f"W_query, W_key, W_value: {origin}; {how} (book 3.4)."),
            *tables,
        )
        bias_note = " + b" if weights.b_query is not None else ""
        panel(
            "Query, keys and values",
            Text(f"query q = x @ W_query{bias_note} = {fmt.vector(result.queries[0])}"),
            Text(f"keys k_j = x_j @ W_key{bias_note} and values v_j = x_j @ W_value{bias_note}:"),
            _keys_values_table(result.tokens, result.keys, result.values, fmt, walk.query_index),
        )
    else:
        panel(
            "Query, keys and values",
            Text(
                "Plain self-attention (book 3.3) has no weights: the query is the input "
                "vector itself, and every input is both a key and a value."
            ),
        )

    many = len(walk.heads) > 1
    for h, head in enumerate(walk.heads):
        label = f"head {h}: " if many else ""
        if many:
            parts.append(
                Text(
                    f"Head {h} of {len(walk.heads)}: dimensions {h * result.head_dim + 1} to "
                    f"{(h + 1) * result.head_dim} of the query, keys and values "
                    f"(q = {fmt.vector(head.query)})",
                    style="bold",
                )
            )
        product = "q · k_j" if projected else "x · x_j"
        panel(f"{label}Attention scores: {product}", *_score_lines(walk, head, fmt))
        if projected:
            panel(
                f"{label}Scaling by 1/√d_k = 1/√{result.head_dim} = {fmt(result.scale)}",
                Text(
                    "Dividing by √d_k keeps the scores' spread independent of the "
                    "dimension, so the softmax does not saturate (book 3.4.1)."
                ),
                _two_column(
                    result.tokens,
                    [
                        f"{fmt(s)} × {fmt(result.scale)} = {fmt(s * result.scale)}"
                        for s in head.scores
                    ],
                    walk.query_index,
                ),
            )
        if params.mode is Mode.CAUSAL:
            hidden = [result.tokens[j] for j in np.flatnonzero(head.masked)]
            names = ", ".join(repr(t) for t in hidden[:MAX_ROWS]) + (
                " …" if len(hidden) > MAX_ROWS else ""
            )
            panel(
                f"{label}Causal mask",
                Text(
                    f"A token may not look ahead: the keys after {walk.token!r} (j > "
                    f"{walk.query_index}) get the score -inf, so their weight will be exactly 0 "
                    f"(book 3.5.1). Masked: {names or 'none (the query is the last token)'}."
                ),
            )
        panel(f"{label}Softmax", *_softmax_parts(walk, head, fmt))
        if head.keep is not None:
            p = params.dropout
            panel(
                f"{label}Dropout",
                Text(
                    f"nn.Dropout({p:g}) in training mode (book 3.5.2): each weight is kept "
                    f"with probability {1 - p:g} and kept ones are scaled by "
                    f"{dropout_scale(p):.6g}, so the expected sum stays 1."
                ),
                _two_column(
                    result.tokens,
                    [
                        _dropout_line(fmt, w, k, u, m)
                        for w, k, u, m in zip(
                            head.weights, head.keep, head.used, head.masked, strict=True
                        )
                    ],
                    walk.query_index,
                ),
            )
        value_name = "v_j" if projected else "x_j"
        panel(
            f"{label}Context vector: Σ_j w_j {value_name}",
            *_context_lines(walk, head, fmt),
        )

    if weights is not None and (many or weights.W_out is not None):
        body: list[RenderableType] = []
        if many:
            body.append(Text(f"The heads side by side: {fmt.vector(result.heads_context[0])}"))
        if weights.W_out is not None:
            if weights.layout is Layout.LINEAR:
                formula = "concat @ out_proj.weight.T"
                formula += " + out_proj.bias" if weights.b_out is not None else ""
                shown_as = "out_proj.weight"
            else:
                formula = "concat @ W_out" + (" + b_out" if weights.b_out is not None else "")
                shown_as = "W_out"
            body.append(
                Text(f"out_proj mixes the heads (book 3.6.2): output = {formula}; {shown_as}:")
            )
            body.append(
                _plain_table(
                    weights.W_out.T if weights.layout is Layout.LINEAR else weights.W_out, fmt
                )
            )
        body.append(Text(f"output = {fmt.vector(result.context_vecs[0])}", style="bold"))
        panel("Combining the heads" if many else "Output projection", *body)

    parts.append(Text(settings_line(result), style="dim"))
    return Group(*parts)


class _Formatter:
    def __init__(self, precision: int) -> None:
        self.precision = precision

    def __call__(self, value: float) -> str:
        if value == -math.inf:
            return "-inf"
        text = f"{value:.{self.precision}f}"
        return text[1:] if text.startswith("-") and not text.strip("-0.") else text

    def factor(self, value: float) -> str:
        """A number in a product: negative ones in parentheses, 0.5×(-0.2)."""
        text = self(value)
        return f"({text})" if text.startswith("-") else text

    def vector(self, values: NDArray[np.floating[Any]]) -> str:
        items = [self(v) for v in values.tolist()]
        if len(items) > MAX_DIMS:
            items = [*items[:4], "…", *items[-3:]]
        return "[" + ", ".join(items) + "]"


def _formatter(precision: int) -> _Formatter:
    return _Formatter(precision)


def _shown_rows(count: int, keep: int | None = None) -> list[int | None]:
    """Row indices to show: all, or the first and last few and row `keep` (the query),
    with None where rows are left out."""
    if count <= MAX_ROWS:
        return list(range(count))
    edge = (MAX_ROWS - 1) // 2
    wanted = sorted(
        {*range(edge), *range(count - edge, count), *([keep] if keep is not None else [])}
    )
    shown: list[int | None] = []
    for index in wanted:
        if shown and shown[-1] is not None and index != shown[-1] + 1:
            shown.append(None)
        shown.append(index)
    return shown


def _gap(shown: Sequence[int | None], at: int) -> str:
    """The label of an elided stretch: how many rows it stands for."""
    before = next(r for r in reversed(shown[:at]) if r is not None)
    after = next(r for r in shown[at + 1 :] if r is not None)
    return f"⋮ {after - before - 1} more"


def _matrix_table(
    tokens: Sequence[str], matrix: NDArray[np.floating[Any]], fmt: _Formatter, highlight: int
) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold")
    table.add_column("token", no_wrap=True, overflow="ellipsis", min_width=9, max_width=20)
    dims = _shown_dims(matrix.shape[1])
    for d in dims:
        table.add_column("…" if d is None else f"d{d + 1}", justify="right", no_wrap=True)
    rows = _shown_rows(len(tokens), highlight)
    for i, r in enumerate(rows):
        if r is None:
            table.add_row(_gap(rows, i), *("" for _ in dims))
            continue
        style = "bold underline" if r == highlight else ""
        table.add_row(
            Text(tokens[r], style=style),
            *("…" if d is None else fmt(matrix[r, d]) for d in dims),
        )
    return table


def _shown_dims(count: int) -> list[int | None]:
    """Columns of a matrix to show: all of a few, else the first three and last two
    (what fits an 80-column panel at 4 decimals)."""
    if count <= 6:
        return list(range(count))
    return [0, 1, 2, None, count - 2, count - 1]


def _plain_table(matrix: NDArray[np.floating[Any]], fmt: _Formatter) -> Table:
    table = Table(box=None, show_header=False, pad_edge=False)
    dims = _shown_dims(matrix.shape[1])
    for _ in dims:
        table.add_column(justify="right")
    rows = _shown_rows(matrix.shape[0])
    for r in rows:
        if r is None:
            table.add_row(*("⋮" for _ in dims))
            continue
        table.add_row(*("…" if d is None else fmt(matrix[r, d]) for d in dims))
    return table


def _keys_values_table(
    tokens: Sequence[str],
    keys: NDArray[np.floating[Any]],
    values: NDArray[np.floating[Any]],
    fmt: _Formatter,
    highlight: int,
) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold")
    table.add_column("token", no_wrap=True, overflow="ellipsis", min_width=9, max_width=20)
    table.add_column("key k_j", no_wrap=True, overflow="fold")
    table.add_column("value v_j", no_wrap=True, overflow="fold")
    rows = _shown_rows(len(tokens), highlight)
    for i, r in enumerate(rows):
        if r is None:
            table.add_row(_gap(rows, i), "", "")
            continue
        style = "bold underline" if r == highlight else ""
        table.add_row(Text(tokens[r], style=style), fmt.vector(keys[r]), fmt.vector(values[r]))
    return table


def _two_column(tokens: Sequence[str], lines: Sequence[str], highlight: int) -> Table:
    table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 0, 0))
    table.add_column(no_wrap=True, overflow="ellipsis", min_width=9, max_width=20)
    table.add_column()
    rows = _shown_rows(len(tokens), highlight)
    for i, r in enumerate(rows):
        if r is None:
            table.add_row(_gap(rows, i), "")
            continue
        table.add_row(Text(tokens[r], style="bold underline" if r == highlight else ""), lines[r])
    return table


def _dropout_line(fmt: _Formatter, weight: float, kept: bool, used: float, masked: bool) -> str:
    if masked:
        return "masked"
    return f"{fmt(weight)} kept → {fmt(used)}" if kept else f"{fmt(weight)} dropped → 0"


def _score_lines(walk: Walkthrough, head: HeadSteps, fmt: _Formatter) -> list[RenderableType]:
    q = head.query
    d = len(q)
    lines = []
    for j, k in enumerate(head.keys):
        if d <= MAX_TERMS:
            terms = " + ".join(
                f"{fmt.factor(a)}×{fmt.factor(b)}" for a, b in zip(q, k, strict=True)
            )
        else:
            terms = f"Σ of {d} products"
        lines.append(f"{terms} = {fmt(head.scores[j])}")
    name = "k_j" if walk.result.params.projected else "x_j"
    intro = Text(
        f"The score of each key is its dot product with the query, Σ_d q_d·{name},d: how "
        "much the two vectors point the same way (book 3.3.1). These are `attn scores`."
    )
    return [intro, _two_column(walk.result.tokens, lines, walk.query_index)]


def _softmax_parts(walk: Walkthrough, head: HeadSteps, fmt: _Formatter) -> list[RenderableType]:
    result = walk.result
    peak = float(np.max(head.scaled))
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold")
    table.add_column("token", no_wrap=True, overflow="ellipsis", min_width=9, max_width=20)
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("− max", justify="right", no_wrap=True)
    table.add_column("exp", justify="right", no_wrap=True)
    table.add_column("÷ sum = weight", justify="right", no_wrap=True)
    rows = _shown_rows(len(result.tokens), walk.query_index)
    for i, r in enumerate(rows):
        if r is None:
            table.add_row(_gap(rows, i), "", "", "", "")
            continue
        style = "bold underline" if r == walk.query_index else ""
        if head.masked[r]:
            table.add_row(Text(result.tokens[r], style=style), "-inf", "-inf", "0", fmt(0.0))
            continue
        table.add_row(
            Text(result.tokens[r], style=style),
            fmt(head.scaled[r]),
            fmt(head.shifted[r]),
            fmt(head.exps[r]),
            fmt(head.weights[r]),
        )
    return [
        Text(
            f"softmax turns scores into weights that are positive and sum to 1: "
            f"w_j = exp(s_j − max) / Σ exp(s − max). Subtracting the max ({fmt(peak)}) "
            f"changes nothing but keeps exp from overflowing. Σ exp = {fmt(head.total)}. "
            "These are `attn weights`."
        ),
        table,
    ]


def _context_lines(walk: Walkthrough, head: HeadSteps, fmt: _Formatter) -> list[RenderableType]:
    result = walk.result
    lines = [f"{fmt(w)} × {fmt.vector(v)}" for w, v in zip(head.used, head.values, strict=True)]
    return [
        Text(
            "The context vector is the weighted sum of the value vectors: each token "
            "contributes its value in proportion to its weight (book 3.3.1)."
        ),
        _two_column(result.tokens, lines, walk.query_index),
        Text(f"= {fmt.vector(head.context)}", style="bold"),
    ]
