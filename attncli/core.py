"""The attention math of the book's chapter 3, as small pure numpy functions.

Shapes: T tokens, n query rows (all T, or the one `--query` row), d dimensions, and
optionally H heads in front: (H, n, T) scores.
Masked scores are -inf, as the book's `masked_fill(mask, -inf)` makes them; the
softmax then gives them a weight of exactly 0.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

import numpy as np
from numpy.typing import NDArray

# float64 by default; float32 when a caller wants torch's arithmetic. Functions keep the dtype.
F = TypeVar("F", bound=np.floating[Any])


def softmax(x: NDArray[F]) -> NDArray[F]:
    """Row-wise softmax over the last axis, exact and overflow-free.

    Subtracting the row maximum changes nothing mathematically (the factor cancels)
    but keeps exp() from overflowing; -inf entries become exactly 0. Every row needs
    at least one finite entry (a causal row always keeps its own token).

    >>> softmax(np.array([[1.0, 1.0], [0.0, -np.inf]])).tolist()
    [[0.5, 0.5], [1.0, 0.0]]
    """
    shifted = x - np.max(x, axis=-1, keepdims=True)
    exps = np.exp(shifted)
    weights: NDArray[F] = exps / np.sum(exps, axis=-1, keepdims=True)
    return weights


def attention_scores(queries: NDArray[F], keys: NDArray[F]) -> NDArray[F]:
    """`attn_scores = queries @ keys.T`: one dot product per (query, key) pair, for each
    head when there are leading head axes."""
    attn_scores: NDArray[F] = queries @ np.swapaxes(
        keys, -1, -2
    )  # (.., n, d) @ (.., d, T) -> (.., n, T)
    return attn_scores


def apply_mask(attn_scores: NDArray[F], mask: NDArray[np.bool_]) -> NDArray[F]:
    """The book's `attn_scores.masked_fill(mask, -inf)`."""
    masked: NDArray[F] = np.where(mask, attn_scores.dtype.type(-np.inf), attn_scores)
    return masked


def attention_weights(attn_scores: NDArray[F], scale: float) -> NDArray[F]:
    """`softmax(attn_scores * scale)` row-wise; scale is 1/sqrt(d_k), or 1 for no scaling.

    >>> attention_weights(np.array([[0.0, np.log(3.0)]]), 1.0).round(4).tolist()
    [[0.25, 0.75]]
    """
    # scale is a Python float, so a float32 array stays float32 (a numpy float64 would not)
    scaled = cast("NDArray[F]", attn_scores * scale)
    return softmax(scaled)


def context_vectors(attn_weights: NDArray[F], values: NDArray[F]) -> NDArray[F]:
    """`context_vecs = attn_weights @ values`: each row a weighted sum of value vectors."""
    context_vecs: NDArray[F] = attn_weights @ values  # (.., n, T) @ (.., T, d_v) -> (.., n, d_v)
    return context_vecs
