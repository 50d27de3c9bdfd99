"""Attention as a pipeline of named stages, in the book's words and order:

    projections -> qk_norm -> positions -> scores -> scale -> modifiers -> mask
    -> softmax -> dropout -> context -> gate -> out_proj

Each stage is a small pure numpy function. The engine runs them over blocks of query
rows (its fast kernel folds scale into the first product, to the same numbers);
`explain` runs them for its one query, keeping what each gives; its panels and its
JSON walk `STAGES`, so a stage added here once appears in all of them. `positions`
(rotary embeddings, rope.py) and `modifiers` (soft-capping, ALiBi, modifiers.py) act
only when asked for.

Shapes: T tokens, n query rows (all T, or the one `--query` row), d dimensions, and
optionally H heads in front: (H, n, T) scores. Masked scores are -inf, as the book's
`masked_fill(mask, -inf)` makes them; the softmax then gives them a weight of exactly 0.
Functions keep the dtype: float64 by default, float32 for torch's arithmetic.
"""

from __future__ import annotations

from typing import Any, NamedTuple, TypeVar, cast

import numpy as np
from numpy.typing import NDArray

F = TypeVar("F", bound=np.floating[Any])


class Stage(NamedTuple):
    """One step of attention: its name (the book's), and whether each head takes it
    on its own (from the scores to the context vectors) or all heads at once."""

    name: str
    per_head: bool


STAGES = (
    Stage("projections", per_head=False),  # queries, keys, values (book 3.4.1)
    Stage("qk_norm", per_head=True),  # RMSNorm on each head's query and keys (Qwen3)
    Stage("positions", per_head=True),  # rotary position embeddings (rope.py)
    Stage("scores", per_head=True),  # attn_scores = queries @ keys.T (3.3.1)
    Stage("scale", per_head=True),  # * 1/sqrt(d_k) (3.4.1)
    Stage("modifiers", per_head=True),  # none yet: soft-capping, ALiBi, sinks go here
    Stage("mask", per_head=True),  # masked_fill(mask, -inf) (3.5.1)
    Stage("softmax", per_head=True),  # attn_weights (3.3.1)
    Stage("dropout", per_head=True),  # nn.Dropout on the weights (3.5.2)
    Stage("context", per_head=True),  # context_vecs = attn_weights @ values (3.3.1)
    Stage("gate", per_head=False),  # times sigmoid(x @ W_gate): GatedMultiHeadAttention
    Stage("out_proj", per_head=False),  # the heads joined, then out_proj (3.6.2)
)


def rms_norm(x: NDArray[F], weight: NDArray[Any] | None = None, eps: float = 1e-6) -> NDArray[F]:
    """RMSNorm over the last axis, as Qwen3's q_norm and k_norm: x / sqrt(mean(x²) + eps),
    times a weight (1 unless given).

    >>> rms_norm(np.array([[3.0, 4.0]])).round(4).tolist()
    [[0.8485, 1.1314]]
    """
    mean_square = np.mean(x * x, axis=-1, keepdims=True)
    normed: NDArray[F] = x / np.sqrt(mean_square + x.dtype.type(eps))
    if weight is not None:
        normed = normed * weight.astype(x.dtype, copy=False)
    return normed


def projections(X: NDArray[F], W: NDArray[Any], b: NDArray[Any] | None) -> NDArray[F]:
    """`X @ W + b` in X's dtype: queries, keys or values (W as applied, (d_in, D)), or
    out_proj of the heads' context vectors."""
    projected: NDArray[F] = X @ W.astype(X.dtype, copy=False)  # (n, d_in) @ (d_in, D) -> (n, D)
    return projected if b is None else projected + b.astype(X.dtype, copy=False)


def scores(queries: NDArray[F], keys: NDArray[F]) -> NDArray[F]:
    """`attn_scores = queries @ keys.T`: one dot product per (query, key) pair, for each
    head when there are leading head axes."""
    attn_scores: NDArray[F] = queries @ np.swapaxes(
        keys, -1, -2
    )  # (.., n, d) @ (.., d, T) -> (.., n, T)
    return attn_scores


def scale(attn_scores: NDArray[F], factor: float) -> NDArray[F]:
    """`attn_scores * factor`: 1/sqrt(d_k), or 1 where the book does not scale.

    `factor` is a Python float, so a float32 array stays float32 (a numpy float64
    would make it float64).
    """
    return cast("NDArray[F]", attn_scores * factor)


def add_mask(scaled: NDArray[F], bias: NDArray[Any]) -> NDArray[F]:
    """A float mask added to the scaled scores, as torch's scaled_dot_product_attention
    adds a float `attn_mask` (its -inf entries are hidden by `mask`)."""
    added: NDArray[F] = scaled + bias.astype(scaled.dtype, copy=False)
    return added


def mask(attn_scores: NDArray[F], hidden: NDArray[np.bool_]) -> NDArray[F]:
    """The book's `attn_scores.masked_fill(hidden, -inf)`."""
    masked: NDArray[F] = np.where(hidden, attn_scores.dtype.type(-np.inf), attn_scores)
    return masked


def softmax(x: NDArray[F], sink: float | None = None) -> NDArray[F]:
    """Row-wise softmax over the last axis, exact and overflow-free.

    Subtracting the row maximum changes nothing mathematically (the factor cancels)
    but keeps exp() from overflowing; -inf entries become exactly 0. A row whose
    entries are all -inf (every key masked) gets zero weights, as torch's
    scaled_dot_product_attention and ONNX's Attention give (a plain softmax: NaN).

    >>> softmax(np.array([[1.0, 1.0], [0.0, -np.inf]])).tolist()
    [[0.5, 0.5], [1.0, 0.0]]
    >>> softmax(scale(np.array([[0.0, np.log(9.0)]]), 0.5)).round(4).tolist()
    [[0.25, 0.75]]
    >>> softmax(np.array([[-np.inf, -np.inf]])).tolist()
    [[0.0, 0.0]]

    With a `sink` logit (gpt-oss's attention sinks) it joins every row as one more
    column, and its share is left out: the row sums to less than 1.

    >>> softmax(np.array([[0.0, 0.0]]), sink=0.0).tolist()
    [[0.3333333333333333, 0.3333333333333333]]
    """
    row_max = np.max(x, axis=-1, keepdims=True)
    if sink is not None:
        row_max = np.maximum(row_max, x.dtype.type(sink))
    empty = row_max == -np.inf  # rows with every entry masked
    if empty.any():
        row_max = np.where(empty, 0, row_max)  # exp(-inf - 0) = 0: no NaN from -inf - -inf
    exps = np.exp(x - row_max)
    sums = np.sum(exps, axis=-1, keepdims=True)
    if sink is not None:
        sums = sums + np.exp(x.dtype.type(sink) - row_max)  # the sink's share of the sum
    if empty.any():
        sums = np.where(empty, 1, sums)  # 0 / 1: the empty rows' weights are 0
    weights: NDArray[F] = exps / sums
    return weights


def dropout(
    attn_weights: NDArray[F], keep: NDArray[np.bool_] | None, keep_scale: float
) -> NDArray[F]:
    """nn.Dropout in training mode: the weights `keep` keeps, times `keep_scale`
    (float32(1) / float32(1 - p)); the rest 0. No mask: the weights as they are."""
    if keep is None:
        return attn_weights
    return cast("NDArray[F]", attn_weights * keep * attn_weights.dtype.type(keep_scale))


def context(attn_weights: NDArray[F], values: NDArray[F]) -> NDArray[F]:
    """`context_vecs = attn_weights @ values`: each row a weighted sum of value vectors."""
    context_vecs: NDArray[F] = attn_weights @ values  # (.., n, T) @ (.., T, d_v) -> (.., n, d_v)
    return context_vecs


def gate(heads_context: NDArray[F], gate_logits: NDArray[Any]) -> NDArray[F]:
    """The book's GatedMultiHeadAttention: the heads' context vectors, side by side,
    times sigmoid(x @ W_gate + b_gate), element by element."""
    logits = gate_logits.astype(heads_context.dtype, copy=False)
    gated: NDArray[F] = heads_context / (1 + np.exp(-logits))
    return gated


def out_proj(
    heads_context: NDArray[F], W_out: NDArray[Any], b_out: NDArray[Any] | None
) -> NDArray[F]:
    """MultiHeadAttention's `out_proj(context_vec)`: the heads joined side by side,
    mixed by one more linear layer."""
    return projections(heads_context, W_out, b_out)
