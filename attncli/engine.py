"""Attention for long sequences: exact results in row blocks, in bounded memory.

Everything here works on one head's arrays (q, K, V of shape (n, d), (T, d), (T, d))
and never holds more than a block of the T x T matrix: `block_rows` picks how many
query rows fit a memory budget. Two kernels:

- `exact_rows`: scores, weights and context for some rows, the textbook way (max
  subtracted, then exp, then divide). Used for everything that shows scores or
  weights, and as the fallback of the fast kernel.
- `fast_context`: only the context vectors, with two passes over each block saved. The
  softmax shift is folded into the first matmul as an extra column: any shift at
  least the row maximum gives the same weights, and Cauchy-Schwarz gives one,
  u_i = |q_i| * max_j |k_j|, without looking at the scores. The row sums come out of
  the second matmul through a column of ones beside V. When a shift is so loose that
  exp() of the largest score would lose precision (u_i - max_i too large), that row
  is recomputed exactly.

Both give the same numbers to rounding (the tests hold them to 1e-12 in float64).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from . import stages
from .masks import Mask
from .modifiers import Modifiers

F = TypeVar("F", bound=np.floating[Any])

# Bytes of working memory a block may use, beyond inputs and outputs (measured on two
# cores: rows of 256 to 512 keys-wide blocks are fastest; smaller blocks cost BLAS
# efficiency, larger ones cache).
BLOCK_BUDGET = 224 * 1024 * 1024
MAX_BLOCK_ROWS = 512
# Bytes per element that drawing a dropout mask needs beside the scores: two 32-bit
# draws, widened to 64 bits, the uniform double and the mask itself.
_DROPOUT_BYTES = 40
# Smallest row sum after the bound shift that keeps full precision: the largest term is
# then far from underflow (exp(-600) in float64, exp(-40) in float32).
_MIN_SUM = {np.dtype(np.float64): np.exp(-600.0), np.dtype(np.float32): float(np.exp(-40.0))}

KeepFn = Callable[[NDArray[np.intp]], NDArray[np.bool_]]  # rows -> (n, T) dropout keep mask


def block_rows(n_keys: int, itemsize: int, budget: int | None = None, dropout: bool = False) -> int:
    """How many query rows' worth of (rows x keys) scores fit `budget` (BLOCK_BUDGET by
    default), with room for a dropout mask and its draws beside them when needed."""
    budget = BLOCK_BUDGET if budget is None else budget
    per_row = n_keys * (itemsize + (_DROPOUT_BYTES if dropout else 0))
    return int(max(1, min(MAX_BLOCK_ROWS, budget // max(per_row, 1))))


def exact_rows(
    q: NDArray[F],
    K: NDArray[F],
    V: NDArray[F],
    scale: float,
    rows: NDArray[np.intp],
    mask: Mask,
    keep: NDArray[np.bool_] | None = None,
    keep_scale: float = 1.0,
    head: int = 0,
    modifiers: Modifiers | None = None,
) -> tuple[NDArray[F], NDArray[F], NDArray[F], NDArray[F]]:
    """(scores, softmax weights, weights used, context) for the query rows `rows` of
    head `head`.

    `q` holds those rows' queries; scores are unscaled, -inf where masked; the weights
    used are the softmax weights after dropout (`keep`, scaled by `keep_scale`). A row
    whose keys are all masked gets zero weights and a zero context vector."""
    attn_scores = stages.scores(q, K)  # (n, d) @ (d, T) -> (n, T)
    scaled = stages.scale(attn_scores, scale)
    sink = None
    if modifiers is not None and modifiers.any:
        # positions as the mask aligns them: only the distance i - j matters
        scaled = modifiers.apply(scaled, rows + mask.offset, np.arange(K.shape[0]), head)
        sink = modifiers.sink(head)
    if mask.hides_any:
        bias = mask.bias_for(rows, 0, K.shape[0], head)  # (n, T) or None
        if bias is not None:
            scaled = stages.add_mask(scaled, bias)
        hidden = mask.hidden(rows, 0, K.shape[0], head)  # (n, T)
        scaled = stages.mask(scaled, hidden)
        attn_scores = stages.mask(attn_scores, hidden)  # as `attn scores` shows them
    weights = stages.softmax(scaled, sink)  # (n, T)
    used = stages.dropout(weights, keep, keep_scale)
    context = stages.context(used, V)  # (n, T) @ (T, d) -> (n, d)
    return attn_scores, weights, used, context


def fast_context(
    Q: NDArray[F],
    K: NDArray[F],
    V: NDArray[F],
    scale: float,
    rows: NDArray[np.intp],
    mask: Mask,
    keep: KeepFn | None = None,
    keep_scale: float = 1.0,
    progress: Callable[[int], None] | None = None,
    budget: int | None = None,
    head: int = 0,
    modifiers: Modifiers | None = None,
) -> NDArray[F]:
    """The context vectors of the query rows `rows` (sorted), `Q` holding their queries,
    for head `head` (which only a per-head mask file tells apart).

    Rows go in blocks; with `keep` (dropout) each block's mask is asked for in order,
    so a seeded stream is consumed as nn.Dropout would consume it. `progress` hears
    the number of rows done after each block."""
    dtype = Q.dtype.type
    n, d = Q.shape
    T = K.shape[0]
    out = np.empty((n, V.shape[1]), dtype=Q.dtype)
    if n == 0:
        return out
    if not mask.banded or (modifiers is not None and modifiers.any):
        # a mask file (a (T_q, T_k) array is small), or scores changed on their way to
        # the softmax (the shift bound no longer holds): the exact way, block by block
        return _exact_context(
            Q, K, V, scale, rows, mask, keep, keep_scale, progress, head, out, modifiers
        )
    budget = BLOCK_BUDGET if budget is None else budget
    with np.errstate(over="ignore", invalid="ignore"):
        k_max = float(np.max(np.linalg.norm(K, axis=1)))  # for the shift bound
    # The fast form keeps [K | 1].T and [V | 1] beside K and V: worth it while those
    # copies are small next to the working memory; past that, two more passes per
    # block do the same without them, and memory stays bounded at any length.
    copies = 2 * T * (d + 1) * Q.dtype.itemsize
    augmented = copies <= budget // 2
    if augmented:
        budget -= copies
        KaT = np.empty((d + 1, T), dtype=Q.dtype)  # the shift rides the first matmul
        KaT[:d] = K.T
        KaT[d] = 1
        V1 = np.empty((T, d + 1), dtype=Q.dtype)  # the row sums ride the second
        V1[:, :d] = V
        V1[:, d] = 1
    block = block_rows(T, Q.dtype.itemsize, budget, dropout=keep is not None)
    buffer = np.empty(block * T, dtype=Q.dtype)  # flat, so every block's view is contiguous
    queries = np.empty((block, d + 1), dtype=Q.dtype)
    sums = np.empty((block, d + 1), dtype=Q.dtype)
    min_sum = _MIN_SUM[Q.dtype]
    for start in range(0, n, block):
        stop = min(n, start + block)
        b = stop - start
        block_pos = rows[start:stop]  # (b,)
        lo, hi = mask.seen_span(block_pos, T)  # the other keys are hidden from every row
        width = hi - lo
        S = buffer[: b * width].reshape(b, width)  # (b, w)
        qa = queries[:b]
        with np.errstate(over="ignore", invalid="ignore"):
            np.multiply(Q[start:stop], dtype(scale), out=qa[:, :d])  # the scale, folded in
            # any shift at least the row's largest score gives the same weights
            shift = np.linalg.norm(qa[:, :d], axis=1) * dtype(k_max)  # (b,)
            if augmented:
                qa[:, d] = -shift
                np.matmul(qa, KaT[:, lo:hi], out=S)  # (b, d+1) @ (d+1, w) -> (b, w)
            else:
                np.matmul(qa[:, :d], K[lo:hi].T, out=S)  # (b, d) @ (d, w) -> (b, w)
                S -= shift[:, np.newaxis]
            first, last = mask.mixed_span(block_pos, lo, hi)  # seen by some rows only
            if last > first:
                S[:, first - lo : last - lo][mask.hidden(block_pos, first, last)] = -np.inf
            np.exp(S, out=S)
            acc = sums[:b]
            block_keep = None
            if keep is not None:
                block_keep = keep(block_pos)  # (b, T), drawn once, in stream order
                totals = S.sum(axis=1)  # the softmax's sums come before dropout
                S *= block_keep[:, lo:hi]
            if augmented:
                np.matmul(S, V1[lo:hi], out=acc)  # (b, w) @ (w, d+1) -> (b, d+1)
                if keep is None:
                    totals = acc[:, d]
            else:
                np.matmul(S, V[lo:hi], out=acc[:, :d])  # (b, w) @ (w, d) -> (b, d)
                if keep is None:
                    totals = S.sum(axis=1)
            if keep is not None:
                acc[:, :d] *= dtype(keep_scale)
            np.divide(acc[:, :d], totals[:, np.newaxis], out=out[start:stop])
        loose = ~(totals >= min_sum) | ~np.isfinite(out[start:stop]).all(axis=1)
        for i in np.flatnonzero(loose):  # a shift too far above the scores: do it exactly
            row_keep = None if block_keep is None else block_keep[i : i + 1]
            with np.errstate(over="ignore", invalid="ignore"):
                *_, context = exact_rows(
                    Q[start + i : start + i + 1],
                    K,
                    V,
                    scale,
                    block_pos[i : i + 1],
                    mask,
                    row_keep,
                    keep_scale,
                    head,
                )
            out[start + i] = context[0]
        if progress is not None:
            progress(stop)
    return out


def _exact_context(
    Q: NDArray[F],
    K: NDArray[F],
    V: NDArray[F],
    scale: float,
    rows: NDArray[np.intp],
    mask: Mask,
    keep: KeepFn | None,
    keep_scale: float,
    progress: Callable[[int], None] | None,
    head: int,
    out: NDArray[F],
    modifiers: Modifiers | None,
) -> NDArray[F]:
    """fast_context's result by exact_rows, block by block."""
    block = block_rows(K.shape[0], 4 * Q.dtype.itemsize, dropout=keep is not None)
    for start in range(0, len(rows), block):
        stop = min(len(rows), start + block)
        part = rows[start:stop]
        block_keep = keep(part) if keep is not None else None
        with np.errstate(over="ignore", invalid="ignore"):
            *_, out[start:stop] = exact_rows(
                Q[start:stop], K, V, scale, part, mask, block_keep, keep_scale, head, modifiers
            )
        if progress is not None:
            progress(stop)
    return out
