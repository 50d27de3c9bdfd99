"""What a command shows (a View: its kind, labels, shape and, computed whole, its
matrices), the cells a mask or dropout took, numbers as tables write them, and the
settings line under every table. Every output format starts from here.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray

from ..errors import shown_text

if TYPE_CHECKING:
    from ..attention import AttentionResult, Prepared
    from ..heads import HeadLayout

# What each command shows, named after the book's tensors.
COMMANDS = ("scores", "weights", "context", "queries", "keys", "values")
Kind = Literal["scores", "weights", "vectors"]


class View(NamedTuple):
    """What one command shows: one matrix per head (one in all for vectors), its row and
    column labels, and, when it was computed whole, the matrices themselves. Tables,
    Markdown and pictures draw the matrices; JSON, CSV and .npy stream the same rows in
    blocks and need only the labels and the shape."""

    command: str
    kind: Kind
    heads: int  # several only for scores and weights
    row_labels: tuple[str, ...]  # n tokens
    col_labels: tuple[str, ...]  # m tokens, or d1..dk for vectors
    query_index: int | None  # the --query row, or None
    values: NDArray[np.floating[Any]] | None = None  # (H, n, m); -inf where masked

    @property
    def matrices(self) -> NDArray[np.floating[Any]]:
        """(H, n, m): the values of a View computed whole."""
        assert self.values is not None, "a streamed View has no matrices"
        return self.values

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the output's `values`: no head axis for one head, no row axis
        for one --query row."""
        shape: tuple[int, ...] = (self.heads, len(self.row_labels), len(self.col_labels))
        if self.heads == 1:
            shape = shape[1:]
        if self.query_index is not None:
            shape = (*shape[:-2], shape[-1])
        return shape


def view(result: AttentionResult, command: str) -> View:
    """Pick what `command` shows from a result (one row when --query was given)."""
    rows = result.rows
    tokens = result.tokens
    row_labels = tuple(tokens[i] for i in rows)
    query = result.query_index
    if command in ("scores", "weights"):
        matrix = result.attn_scores if command == "scores" else result.attn_weights
        kind: Kind = "scores" if command == "scores" else "weights"
        return View(command, kind, result.heads, row_labels, result.key_tokens, query, matrix)
    if command in ("keys", "values") and result.prepared.kv is not None:
        # cross-attention: every key's (and value's) own token
        row_labels, rows = result.key_tokens, np.arange(len(result.key_tokens))
    vectors = {
        "context": result.context_vecs,
        "queries": result.queries,
        "keys": result.keys[rows],
        "values": result.values[rows],
    }[command]
    dims = vector_labels(vectors.shape[1])
    return View(
        command, "vectors", 1, row_labels, dims, query, vectors[np.newaxis]
    )  # (n, d) -> (1, n, d)


def vector_labels(width: int) -> tuple[str, ...]:
    """The columns of a vector: d1, d2, ..."""
    return tuple(f"d{k + 1}" for k in range(width))


# From this size on, numbers are shown as 1.2346e+38: fixed decimals would print dozens
# of digits that float64 does not even hold.
LARGE_NUMBER = 1e15


def format_number(value: float, precision: int) -> str:
    """A number at `precision` decimals as tables show it (-inf stays; no -0.00; huge
    numbers in scientific notation).

    >>> format_number(-0.00001, 4), format_number(2.5e38, 4)
    ('0.0000', '2.5000e+38')
    """
    if value == -math.inf:
        return "-inf"
    if abs(value) >= LARGE_NUMBER:
        return f"{value:.{precision}e}"
    text = f"{value:.{precision}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text  # no "-0.00"


def settings_line(result: AttentionResult) -> str:
    """The parameters that made a result, in one line: d_in=3 · d_out=2 · init=rand · ..."""
    return settings_text(result.prepared)


def settings_text(prepared: Prepared) -> str:
    """The parameters of prepared attention, in one line (settings_line's)."""
    params = prepared.params
    settings = prepared.settings()
    parts = [f"d_in={settings['d_in']}"]
    if settings["qkv"] is not None:  # a model's queries, keys and values, as given
        parts = [f"q, k, v from {shown_text(settings['qkv'])}"]
        parts.append(f"{prepared.heads} heads of {prepared.head_dim}")
        if settings["kv_groups"] is not None:
            parts.append(_groups_text(prepared.layout))
        if params.scale is None:
            parts.append(f"scale=1/√{prepared.head_dim}={prepared.scale:.4g}")
    elif params.projected:
        parts.append(f"d_out={settings['d_out']}")
        if prepared.heads > 1 or settings["kv_groups"] is not None:
            kind = "wrapper of " if settings["wrapper"] else ""
            parts.append(f"{kind}{prepared.heads} heads of {prepared.head_dim}")
        if settings["kv_groups"] is not None:
            parts.append(_groups_text(prepared.layout))
        if settings["latent_dim"] is not None:
            parts.append(f"keys and values from a latent of {settings['latent_dim']}")
        if settings["weights"]:
            parts.append(f"weights={shown_text(settings['weights'])}")
        else:
            parts += [f"init={settings['init']}", f"seed={params.seed}"]
        if settings["qkv_bias"]:
            parts.append("qkv_bias")
        if params.scale is None:
            parts.append(f"scale=1/√{prepared.head_dim}={prepared.scale:.4g}")
        if params.batch > 1:
            parts.append(f"batch item 0 of {params.batch}")
    else:  # plain attention
        scaling = "" if params.scale is not None else "; no scaling"
        parts.append(f"inputs as queries, keys, values{scaling}")
    if params.scale is not None:
        parts.append(f"scale={prepared.scale:.4g} (given)")
    if params.gate:
        parts.append("sigmoid output gate")
    if prepared.unnormed is not None:
        parts.append("QK-norm")
    if params.softcap is not None:
        parts.append(f"softcap={params.softcap:g}")
    if params.alibi:
        parts.append("ALiBi")
    sinks = prepared.modifiers.sinks
    if sinks is not None:
        shown = sinks if len(set(sinks)) > 1 else sinks[:1]
        parts.append("sink logits " + ",".join(f"{x:g}" for x in shown))
    if params.rope is not None:
        offset = f" from position {params.position_offset}" if params.position_offset else ""
        parts.append(params.rope.describe() + offset)
    return " · ".join(parts)


def _groups_text(layout: HeadLayout) -> str:
    """Which query heads share each key/value head, in one phrase.

    'grouped-query: 2 key/value heads, for query heads 0-1, 2-3'
    """
    size = layout.group_size
    spans = [
        f"{g * size}-{g * size + size - 1}" if size > 1 else str(g) for g in range(layout.kv_heads)
    ]
    shown = spans if len(spans) <= 8 else [*spans[:3], "…", spans[-1]]
    kind = "multi-query" if layout.kv_heads == 1 else "grouped-query"
    plural = "s" if layout.kv_heads > 1 else ""
    return f"{kind}: {layout.kv_heads} key/value head{plural}, for query heads {', '.join(shown)}"


def empty_rows_text(result: AttentionResult) -> str | None:
    """A line naming the rows shown whose every key is masked (in some head), or None.

    Their weights are 0 and their context vectors zero, as torch's SDPA gives."""
    mask = result.mask
    if not mask.hides_any:
        return None
    n_keys = result.keys.shape[0]
    empty = mask.hidden_heads(result.rows, 0, n_keys, result.heads).all(axis=-1).any(axis=0)
    if not empty.any():
        return None
    names = [f"{shown_text(result.tokens[int(i)])!r} (#{int(i)})" for i in result.rows[empty][:5]]
    more = f" and {int(empty.sum()) - 5} more" if empty.sum() > 5 else ""
    return (
        f"every key masked for {', '.join(names)}{more}: weights 0 and a zero context "
        "vector, as torch's scaled_dot_product_attention gives"
    )


def hidden_cells(result: AttentionResult, shown: View, head: int = 0) -> NDArray[np.bool_]:
    """(n, m): the cells of head `head`'s scores or weights that the mask hides (none
    for vectors): -inf scores, and weights that are 0 by construction, not by chance."""
    n_cols = shown.matrices.shape[2]
    if shown.kind == "vectors" or not result.mask.hides_any:
        return np.zeros((len(result.rows), n_cols), dtype=bool)
    return result.mask.hidden(result.rows, 0, n_cols, head)


def masked_cells(result: AttentionResult, shown: View) -> NDArray[np.bool_] | None:
    """(H, n, m): cells that are masked or dropped rather than computed, if any."""
    if shown.kind == "vectors":
        return None
    masked = np.stack(
        [hidden_cells(result, shown, h) for h in range(shown.matrices.shape[0])]
    )  # (H, n, m)
    if shown.kind == "weights" and result.dropout_keep is not None:
        masked = masked | ~result.dropout_keep
    return masked if masked.any() else None
