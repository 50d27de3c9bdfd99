"""`attn explain` for people: one rich panel per step. Returns renderables; never prints.

Long inputs stay readable: beyond MAX_ROWS tokens the middle rows are elided, vectors
longer than MAX_DIMS show their ends, and dot products with more than MAX_TERMS terms
are summed without writing every product out. `-f json` has everything.

Every number is shown whole or not at all, at any width (render_fit.py lays the tables
out). Tokens and file names are shown escaped (errors.shown_text), as Text, never as
markup.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rich.console import Group, RenderableType
from rich.text import Text

from .. import stages
from ..attention import positions
from ..errors import shown_text
from ..explain import HeadSteps, Walkthrough, weight_names
from ..params import WeightLayout
from ..rng import dropout_scale
from . import fit
from .table import Trimmed
from .view import format_number, settings_line

MAX_ROWS = 12  # tokens listed in full; more are elided in the middle
MAX_DIMS = 8  # vector entries shown in full
MAX_TERMS = 6  # products written out in a dot product
# Pictures (SVG, HTML) of the walkthrough are as wide as text stays readable: its
# paragraphs would otherwise measure as wide as each one on a single line.
READING_WIDTH = 120


def render(walk: Walkthrough, precision: int = 4) -> RenderableType:
    """The whole walkthrough as a sequence of numbered panels: the inputs, then each
    stage of stages.STAGES (the per-head ones head by head), then the settings."""
    drawing = _Drawing(walk, _Formatter(precision))
    result = walk.result
    T, d_in = result.embeddings.matrix.shape
    source = f"d_in={d_in}" if result.prepared.qkv_source is None else "q, k, v given"
    drawing.parts.append(
        Text(
            f"attn explain · {result.params.mode.value} · query {drawing.token} "
            f"(#{walk.query_index}) · {T} tokens, {source}",
            style="bold",
        )
    )
    _inputs(drawing)
    per_head = [stage for stage in stages.STAGES if stage.per_head]
    for stage in stages.STAGES:
        if not stage.per_head:
            PANELS[stage.name](drawing, 0)
        elif stage is per_head[0]:  # the heads, one after another, each through them all
            for h in range(len(walk.heads)):
                _head_banner(drawing, h)
                for step in per_head:
                    PANELS[step.name](drawing, h)
    drawing.parts.append(Text(settings_line(result), style="dim"))
    return Trimmed(Group(*drawing.parts), widest=READING_WIDTH)


class _Drawing:
    """The panels drawn so far, and what every step's panel needs."""

    def __init__(self, walk: Walkthrough, fmt: _Formatter) -> None:
        self.walk = walk
        self.fmt = fmt
        self.token = f"'{shown_text(walk.token)}'"
        self.tokens = [shown_text(t) for t in walk.result.tokens]
        self.key_tokens = [shown_text(t) for t in walk.result.key_tokens]
        self.key_row = walk.key_index
        self.many = len(walk.heads) > 1
        self.parts: list[RenderableType] = []
        self.number = 0

    def panel(self, title: str, *body: RenderableType, detail: str = "") -> None:
        """A numbered panel; `detail` ends its title where the width allows."""
        self.number += 1
        self.parts.append(fit.panel(f"{self.number}. {title}", detail, Group(*body)))

    def label(self, h: int) -> str:
        """What a per-head panel's title starts with."""
        return f"head {h}: " if self.many else ""


def _inputs(drawing: _Drawing) -> None:
    walk, fmt = drawing.walk, drawing.fmt
    source = walk.result.prepared.qkv_source
    if source is not None:  # no inputs: a model's queries, keys and values
        drawing.panel(
            "Queries, keys and values, as given",
            Text(
                f"q, k and v come from {shown_text(source)}, as a model computed them: no "
                f"inputs, no projections. The query is token #{walk.query_index}, "
                f"{drawing.token}; attention goes as torch's scaled_dot_product_attention."
            ),
        )
        return
    x = walk.result.embeddings.matrix
    d_in = x.shape[1]
    drawing.panel(
        "The inputs",
        Text(
            f"Each token is a vector of d_in = {d_in} numbers (book 3.3). The query is token "
            f"#{walk.query_index}, {drawing.token}: x = {fmt.vector(x[walk.query_index])}"
        ),
        _matrix_table(drawing.tokens, x, fmt, highlight=walk.query_index),
    )


def _projections(drawing: _Drawing, h: int) -> None:
    result, fmt = drawing.walk.result, drawing.fmt
    projections = result.projections
    if result.prepared.qkv_source is not None:
        drawing.panel(
            "Query, keys and values",
            Text(f"query q = {fmt.vector(result.queries[0])}; keys k_j and values v_j:"),
            _keys_values_table(
                drawing.key_tokens, result.keys, result.values, fmt, drawing.key_row
            ),
        )
        return
    if projections is None:
        drawing.panel(
            "Query, keys and values",
            Text(
                "Plain self-attention (book 3.3) has no weights: the query is the input "
                "vector itself, and every input is both a key and a value."
            ),
        )
        return
    d_in, D = projections.d_in, projections.d_out
    linear = projections.layout is WeightLayout.LINEAR

    def drawn(width: int) -> str:
        return f"nn.Linear({d_in}, {width})" if linear else f"torch.rand({d_in}, {width})"

    kv_width = int(projections.W_key.shape[1])
    L = projections.latent_dim
    if projections.file:
        origin = f"read from {shown_text(projections.file)}"
    elif L is not None:  # MultiHeadLatentAttention's order
        fan_in = f"nn.Linear({L}, {D})" if linear else f"torch.rand({L}, {D})"
        origin = (
            f"W_query {drawn(D)}, W_DKV {drawn(L)}, then W_UK and W_UV {fan_in}, after "
            f"torch.manual_seed({result.params.seed}) (MultiHeadLatentAttention's order)"
        )
    elif projections.W_gate is not None:  # GatedMultiHeadAttention's order
        origin = (
            f"four {drawn(D)}, W_query, W_gate, W_key, W_value, after "
            f"torch.manual_seed({result.params.seed}) (GatedMultiHeadAttention's order)"
        )
    elif kv_width != D or result.params.grouped:  # GroupedQueryAttention's order
        origin = (
            f"W_key and W_value {drawn(kv_width)}, then W_query {drawn(D)}, after "
            f"torch.manual_seed({result.params.seed}) (GroupedQueryAttention's order)"
        )
    else:
        origin = f"three {drawn(D)} after torch.manual_seed({result.params.seed})"
    if linear:
        how = f"each stored as nn.Linear's ({D}, {d_in}) weight and applied as X @ W.T"
        if kv_width != D or L is not None:
            how = "each stored as nn.Linear's (out, in) weight and applied as X @ W.T"
    else:
        how = f"each ({d_in}, {D}), applied as X @ W"
        if kv_width != D or L is not None:
            how = "each (in, out), applied as X @ W"
    names = weight_names(projections)
    tables: list[RenderableType] = []
    for name, shown in names.items():
        matrix = getattr(projections, name)
        written = matrix.T if projections.layout is WeightLayout.LINEAR else matrix
        tables.append(Text(shown, style="bold"))
        tables.append(_plain_table(written, fmt))
        bias = getattr(projections, "b" + name[1:])
        if bias is not None:
            tables.append(Text(f"b{shown[1:]} = {fmt.vector(bias)}"))
    drawing.panel(
        "The trainable weights",
        Text(f"{', '.join(names.values())}: {origin}; {how} (book 3.4)."),
        *tables,
    )
    bias_note = " + b" if projections.b_query is not None else ""
    latent = result.prepared.latent
    if latent is None:
        how_kv = f"keys k_j = x_j @ W_key{bias_note} and values v_j = x_j @ W_value{bias_note}:"
        parts: list[RenderableType] = [Text(how_kv)]
    else:  # MultiHeadLatentAttention: the keys and values come from the latent c_kv
        parts = [
            Text(
                f"the latent c_j = x_j @ W_DKV{bias_note} ({L} numbers a token: all the "
                "KV cache holds, ch04/05_mla):"
            ),
            _matrix_table(drawing.key_tokens, latent, fmt, highlight=drawing.key_row),
            Text(
                f"keys k_j = c_j @ W_UK{bias_note} and values v_j = c_j @ W_UV{bias_note}, "
                "re-projected from it:"
            ),
        ]
    drawing.panel(
        "Query, keys and values",
        Text(f"query q = x @ W_query{bias_note} = {fmt.vector(result.queries[0])}"),
        *parts,
        _keys_values_table(drawing.key_tokens, result.keys, result.values, fmt, drawing.key_row),
    )


def _head_banner(drawing: _Drawing, h: int) -> None:
    if not drawing.many:
        return
    layout, head = drawing.walk.result.layout, drawing.walk.heads[h]
    columns = layout.columns(h)
    if layout.kv_heads == layout.heads:
        text = (
            f"Head {h} of {layout.heads}: dimensions {columns.start + 1} to {columns.stop} of "
            f"the query, keys and values (q = {drawing.fmt.vector(head.query)})"
        )
    else:  # grouped-query attention: key/value heads shared by consecutive query heads
        g, kv_columns = layout.kv_head(h), layout.kv_columns(h)
        sharing = [q for q in range(layout.heads) if layout.kv_head(q) == g]
        text = (
            f"Head {h} of {layout.heads}: dimensions {columns.start + 1} to {columns.stop} of "
            f"the query (q = {drawing.fmt.vector(head.query)}); keys and values of key/value "
            f"head {g} of {layout.kv_heads} (their dimensions {kv_columns.start + 1} to "
            f"{kv_columns.stop}), shared by query heads {', '.join(map(str, sharing))}"
        )
    drawing.parts.append(Text(text, style="bold"))


def _qk_norm(drawing: _Drawing, h: int) -> None:
    """QK-norm: head h's query and keys, each divided by its root mean square."""
    result, fmt = drawing.walk.result, drawing.fmt
    prepared = result.prepared
    if prepared.unnormed is None:
        return
    layout = result.layout
    queries_before, keys_before = prepared.unnormed
    queries_after, keys_after = prepared.before_rotation
    i = drawing.walk.query_index
    q_part, k_part = layout.columns(h), layout.kv_columns(h)
    query_after = queries_after[i, q_part]
    lines = [
        f"{fmt.vector(keys_before[j, k_part])} → {fmt.vector(keys_after[j, k_part])}"
        for j in range(prepared.n_keys)
    ]
    drawing.panel(
        f"{drawing.label(h)}QK-norm",
        Text(
            "Each head's query and keys are RMS-normalised, x / sqrt(mean(x²) + 1e-6) (Qwen3's "
            "q_norm and k_norm"
            + (
                ", times the weights file's weights"
                if prepared.projections is not None
                and (
                    prepared.projections.q_norm is not None
                    or prepared.projections.k_norm is not None
                )
                else ", unit weights"
            )
            + "), before the rotation: the scores' size no longer grows with the vectors'."
        ),
        Text(f"query: {fmt.vector(queries_before[i, q_part])} → {fmt.vector(query_after)}"),
        _two_column(drawing.key_tokens, lines, drawing.walk.key_index),
    )


def _positions(drawing: _Drawing, h: int) -> None:
    """RoPE: head h's query and keys turned by their positions' angles."""
    result, fmt = drawing.walk.result, drawing.fmt
    prepared, rope = result.prepared, result.params.rope
    if prepared.unrotated is None or rope is None:
        return
    layout = result.layout
    queries_before, keys_before = prepared.unrotated
    query_positions, key_positions = positions(result.params, prepared.n_queries, prepared.n_keys)
    i = drawing.walk.query_index
    q_part, k_part = layout.columns(h), layout.kv_columns(h)
    pairs = (
        "the halves [x1, x2] of each vector turn together: x' = x·cos + [-x2, x1]·sin"
        if rope.layout == "split"
        else "the pairs (x_2k, x_2k+1) turn: x'_2k = x_2k·cos - x_2k+1·sin, "
        "x'_2k+1 = x_2k·sin + x_2k+1·cos"
    )
    lines = [
        f"{fmt.vector(keys_before[j, k_part])} → {fmt.vector(result.keys[j, k_part])} "
        f"(position {int(key_positions[j])})"
        for j in range(prepared.n_keys)
    ]
    drawing.panel(
        f"{drawing.label(h)}Rotary positions",
        Text(
            f"{rope.describe()}: each dimension pair k turns by the angle position × "
            f"inv_freq_k, inv_freq_k = 1/theta^(2k/d); {pairs}. Scores then depend on "
            "how far apart two tokens are, not where they are."
        ),
        Text(
            f"query (position {int(query_positions[i])}): "
            f"{fmt.vector(queries_before[i, q_part])} → {fmt.vector(result.queries[0, q_part])}"
        ),
        _two_column(drawing.key_tokens, lines, drawing.walk.key_index),
    )


def _modifiers(drawing: _Drawing, h: int) -> None:
    """Soft-capping and ALiBi: head h's scaled scores on their way to the mask."""
    walk, fmt = drawing.walk, drawing.fmt
    modifiers, head = walk.result.prepared.modifiers, walk.heads[h]
    if head.modified is None or (modifiers.softcap is None and modifiers.alibi is None):
        return
    what = []
    if modifiers.softcap is not None:
        cap = fmt(modifiers.softcap)
        what.append(
            f"soft-capped, s → {cap}·tanh(s / {cap}) (Gemma 2): no score beyond ±{cap}, and "
            "small ones nearly unchanged"
        )
    if modifiers.alibi is not None:
        slope = modifiers.alibi[h]
        what.append(
            f"ALiBi's linear bias added, −{fmt(slope)}·(i − j): the farther back a key, the "
            "lower its score (this head's slope, from the ALiBi paper's formula)"
        )
    scaled = stages.scale(head.scores, walk.result.scale)
    lines = [f"{fmt(a)} → {fmt(b)}" for a, b in zip(scaled, head.modified, strict=True)]
    drawing.panel(
        f"{drawing.label(h)}Score modifiers",
        Text("The scaled scores are " + "; then ".join(what) + "."),
        _two_column(drawing.key_tokens, lines, walk.key_index),
    )


def _scores(drawing: _Drawing, h: int) -> None:
    product = "q · k_j" if drawing.walk.result.prepared.projected else "x · x_j"
    drawing.panel(
        f"{drawing.label(h)}Attention scores",
        *_score_lines(drawing.walk, drawing.key_tokens, drawing.walk.heads[h], drawing.fmt),
        detail=f": {product}",
    )


def _scale(drawing: _Drawing, h: int) -> None:
    result, fmt = drawing.walk.result, drawing.fmt
    given = result.params.scale is not None
    if not result.prepared.projected and not given:
        return  # section 3.3 does not scale
    why = (
        "Dividing by √d_k keeps the scores' spread independent of the dimension, so the "
        "softmax does not saturate (book 3.4.1)."
    )
    if given:
        why = f"The scale given (--scale) replaces 1/√d_k = {fmt(result.head_dim**-0.5)}."
    drawing.panel(
        f"{drawing.label(h)}Scaling by {fmt(result.scale) if given else '1/√d_k'}",
        Text(why),
        _two_column(
            drawing.key_tokens,
            [
                f"{fmt(s)} × {fmt(result.scale)} = {fmt(s * result.scale)}"
                for s in drawing.walk.heads[h].scores
            ],
            drawing.walk.key_index,
        ),
        detail="" if given else f" = 1/√{result.head_dim} = {fmt(result.scale)}",
    )


def _mask(drawing: _Drawing, h: int) -> None:
    walk = drawing.walk
    if not walk.result.mask.hides_any:
        return
    hidden = [drawing.key_tokens[j] for j in np.flatnonzero(walk.heads[h].masked)]
    names = ", ".join(f"'{t}'" for t in hidden[:MAX_ROWS]) + (
        " …" if len(hidden) > MAX_ROWS else ""
    )
    mask, i = walk.result.mask, walk.query_index
    if mask.window is not None:
        title = f"Sliding-window mask (W = {mask.window})"
        why = (
            f"A token sees only the {mask.window} latest keys, itself included (i-W < j ≤ i, "
            f"as ch04/06_swa and Gemma 3): the keys after {drawing.token} and those "
            f"{mask.window} or more before it get the score -inf, so their weight will be "
            "exactly 0."
        )
    elif mask.causal:
        title = "Causal mask"
        why = (
            f"A token may not look ahead: the keys after {drawing.token} (j > {i}) get the "
            "score -inf, so their weight will be exactly 0 (book 3.5.1)."
        )
    else:
        title, why = "Mask", ""
    if mask.source is not None:
        added = walk.heads[h].added
        title = f"{title} and mask file" if mask.causal else "Mask file"
        why += (
            f"{' ' if why else ''}{shown_text(mask.source)} hides the keys it marks False "
            "(or -inf): they get the score -inf too"
            + ("; its other values are added to the scaled scores." if added is not None else ".")
        )
        if added is not None:
            why += " Added: " + fmt_list(drawing, added)
    nothing = (
        "none (the query is the last token)" if mask.causal and mask.window is None else "none"
    )
    drawing.panel(f"{drawing.label(h)}{title}", Text(f"{why} Masked: {names or nothing}."))
    if not walk.heads[h].masked.all():
        return
    drawing.parts.append(
        Text(
            f"Every key is masked for {drawing.token}: its weights are 0 and its context "
            "vector is zero, as torch's scaled_dot_product_attention gives (a plain softmax "
            "would give NaN).",
            style="bold",
        )
    )


def fmt_list(drawing: _Drawing, values: NDArray[Any]) -> str:
    """A few numbers with their key tokens: 'Your' +0.5, 'journey' -1.0, …"""
    shown = [
        f"'{t}' {drawing.fmt(float(v))}" for t, v in zip(drawing.key_tokens, values, strict=True)
    ]
    return ", ".join(shown[:MAX_ROWS]) + (" …" if len(shown) > MAX_ROWS else "") + "."


def _softmax(drawing: _Drawing, h: int) -> None:
    drawing.panel(
        f"{drawing.label(h)}Softmax",
        *_softmax_parts(drawing.walk, drawing.key_tokens, drawing.walk.heads[h], drawing.fmt),
    )


def _dropout(drawing: _Drawing, h: int) -> None:
    head, fmt = drawing.walk.heads[h], drawing.fmt
    if head.keep is None:
        return
    p = drawing.walk.result.params.dropout
    drawing.panel(
        f"{drawing.label(h)}Dropout",
        Text(
            f"nn.Dropout({p:g}) in training mode (book 3.5.2): each weight is kept "
            f"with probability {1 - p:g} and kept ones are scaled by "
            f"{dropout_scale(p):.6g}, so the expected sum stays 1."
            if p < 1
            else "nn.Dropout(1) in training mode (book 3.5.2) drops every weight: "
            "all are 0, as torch gives them, and nothing is drawn."
        ),
        _two_column(
            drawing.key_tokens,
            [
                _dropout_line(fmt, w, k, u, m)
                for w, k, u, m in zip(head.weights, head.keep, head.used, head.masked, strict=True)
            ],
            drawing.walk.key_index,
        ),
    )


def _context(drawing: _Drawing, h: int) -> None:
    value_name = "v_j" if drawing.walk.result.prepared.projected else "x_j"
    drawing.panel(
        f"{drawing.label(h)}Context vector",
        *_context_lines(drawing.walk, drawing.key_tokens, drawing.walk.heads[h], drawing.fmt),
        detail=f": Σ_j w_j {value_name}",
    )


def _gate(drawing: _Drawing, h: int) -> None:
    """GatedMultiHeadAttention's sigmoid gate on the heads' context vectors."""
    result, fmt = drawing.walk.result, drawing.fmt
    logits = result.prepared.gate_logits
    if logits is None:
        return
    row = logits[drawing.walk.query_index]
    gate = stages.gate(np.ones_like(row), row)
    drawing.panel(
        "Output gate",
        Text(
            "GatedMultiHeadAttention (ch04/08_deltanet) scales each of the heads' context "
            "numbers by a gate between 0 and 1 made from the input: sigmoid(x @ W_gate)."
        ),
        Text(f"the heads side by side: {fmt.vector(result.heads_context[0])}"),
        Text(f"gate = sigmoid({fmt.vector(row)}) = {fmt.vector(gate)}"),
        Text(f"gated: {fmt.vector(stages.gate(result.heads_context[0], row))}", style="bold"),
    )


def _out_proj(drawing: _Drawing, h: int) -> None:
    result, fmt = drawing.walk.result, drawing.fmt
    projections = result.projections
    if projections is None or not (drawing.many or projections.W_out is not None):
        return
    body: list[RenderableType] = []
    if drawing.many:
        body.append(Text(f"The heads side by side: {fmt.vector(result.heads_context[0])}"))
    if projections.W_out is not None:
        if projections.layout is WeightLayout.LINEAR:
            formula = "concat @ out_proj.weight.T"
            formula += " + out_proj.bias" if projections.b_out is not None else ""
            shown_as = "out_proj.weight"
        else:
            formula = "concat @ W_out" + (" + b_out" if projections.b_out is not None else "")
            shown_as = "W_out"
        body.append(Text(f"out_proj mixes the heads (book 3.6.2): output = {formula}; {shown_as}:"))
        body.append(
            _plain_table(
                projections.W_out.T
                if projections.layout is WeightLayout.LINEAR
                else projections.W_out,
                fmt,
            )
        )
    body.append(Text(f"output = {fmt.vector(result.context_vecs[0])}", style="bold"))
    drawing.panel("Combining the heads" if drawing.many else "Output projection", *body)


def _nothing_yet(drawing: _Drawing, h: int) -> None:
    """A stage that changes nothing yet (positions, modifiers) draws no panel."""


# Each stage's panel (per head for the per-head stages), in the order of stages.STAGES.
PANELS: dict[str, Callable[[_Drawing, int], None]] = {
    "projections": _projections,
    "qk_norm": _qk_norm,
    "positions": _positions,
    "scores": _scores,
    "scale": _scale,
    "modifiers": _modifiers,
    "mask": _mask,
    "softmax": _softmax,
    "dropout": _dropout,
    "context": _context,
    "gate": _gate,
    "out_proj": _out_proj,
}


class _Formatter:
    def __init__(self, precision: int) -> None:
        self.precision = precision

    def __call__(self, value: float) -> str:
        return format_number(value, self.precision)

    def factor(self, value: float) -> str:
        """A number in a product: negative ones in parentheses, 0.5×(-0.2)."""
        text = self(value)
        return f"({text})" if text.startswith("-") else text

    def vector(self, values: NDArray[np.floating[Any]]) -> str:
        items = [self(v) for v in values.tolist()]
        if len(items) > MAX_DIMS:
            items = [*items[:4], "…", *items[-3:]]
        return "[" + ", ".join(items) + "]"


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


def _labelled_rows(
    tokens: Sequence[str], highlight: int, cells: Callable[[int], list[str]], n_cols: int
) -> tuple[list[Text], list[list[str]]]:
    """The label and the cells of each shown row (an elided stretch: "⋮ N more" and
    empty cells)."""
    rows = _shown_rows(len(tokens), highlight)
    labels = [
        Text(_gap(rows, i))
        if r is None
        else Text(tokens[r], style="bold underline" if r == highlight else "")
        for i, r in enumerate(rows)
    ]
    return labels, [[""] * n_cols if r is None else cells(r) for r in rows]


def _matrix_table(
    tokens: Sequence[str], matrix: NDArray[np.floating[Any]], fmt: _Formatter, highlight: int
) -> fit.Fitted:
    n_dims = matrix.shape[1]
    labels, rows = _labelled_rows(
        tokens, highlight, lambda r: [fmt(v) for v in matrix[r].tolist()], n_dims
    )
    return fit.grid(rows, [f"d{d + 1}" for d in range(n_dims)], labels)


def _plain_table(matrix: NDArray[np.floating[Any]], fmt: _Formatter) -> fit.Fitted:
    rows = [
        ["⋮"] * matrix.shape[1] if r is None else [fmt(v) for v in matrix[r].tolist()]
        for r in _shown_rows(matrix.shape[0])
    ]
    return fit.grid(rows)


def _keys_values_table(
    tokens: Sequence[str],
    keys: NDArray[np.floating[Any]],
    values: NDArray[np.floating[Any]],
    fmt: _Formatter,
    highlight: int,
) -> fit.Fitted:
    labels, rows = _labelled_rows(
        tokens, highlight, lambda r: [fmt.vector(keys[r]), fmt.vector(values[r])], 2
    )
    return fit.vector_table(labels, rows, ("key k_j", "value v_j"))


def _two_column(tokens: Sequence[str], lines: Sequence[str], highlight: int) -> fit.Fitted:
    labels, rows = _labelled_rows(tokens, highlight, lambda r: [lines[r]], 1)
    return fit.line_table(labels, [row[0] for row in rows])


def _dropout_line(fmt: _Formatter, weight: float, kept: bool, used: float, masked: bool) -> str:
    if masked:
        return "masked"
    return f"{fmt(weight)} kept → {fmt(used)}" if kept else f"{fmt(weight)} dropped → 0"


def _score_lines(
    walk: Walkthrough, tokens: Sequence[str], head: HeadSteps, fmt: _Formatter
) -> list[RenderableType]:
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
    name = "k_j" if walk.result.prepared.projected else "x_j"
    intro = Text(
        f"The score of each key is its dot product with the query, Σ_d q_d·{name},d: how "
        "much the two vectors point the same way (book 3.3.1). These are `attn scores`."
    )
    return [intro, _two_column(tokens, lines, walk.key_index)]


def _softmax_parts(
    walk: Walkthrough, tokens: Sequence[str], head: HeadSteps, fmt: _Formatter
) -> list[RenderableType]:
    peak = float(np.max(head.scaled))

    def cells(r: int) -> list[str]:
        if head.masked[r]:
            return ["-inf", "-inf", "0", fmt(0.0)]
        steps = (head.scaled[r], head.shifted[r], head.exps[r], head.weights[r])
        return [fmt(value) for value in steps]

    labels, rows = _labelled_rows(tokens, walk.key_index, cells, 4)
    headers = ("score", "− max", "exp", "÷ sum = weight")
    text = (
        f"softmax turns scores into weights that are positive and sum to 1: "
        f"w_j = exp(s_j − max) / Σ exp(s − max). Subtracting the max ({fmt(peak)}) "
        f"changes nothing but keeps exp from overflowing. Σ exp = {fmt(head.total)}. "
        "These are `attn weights`."
    )
    if head.sink_share is not None:
        text += (
            f" A sink's logit joined the sum as one more column and was dropped after "
            f"(gpt-oss): it took {fmt(head.sink_share)} of the weight, so this row sums to "
            f"{fmt(1 - head.sink_share)}."
        )
    return [Text(text), fit.grid(rows, headers, labels)]


def _context_lines(
    walk: Walkthrough, tokens: Sequence[str], head: HeadSteps, fmt: _Formatter
) -> list[RenderableType]:
    lines = [f"{fmt(w)} × {fmt.vector(v)}" for w, v in zip(head.used, head.values, strict=True)]
    return [
        Text(
            "The context vector is the weighted sum of the value vectors: each token "
            "contributes its value in proportion to its weight (book 3.3.1)."
        ),
        _two_column(tokens, lines, walk.key_index),
        Text(f"= {fmt.vector(head.context)}", style="bold"),
    ]
